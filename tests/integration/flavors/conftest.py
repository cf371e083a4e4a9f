"""The flavor fixtures (``flavor``, ``flavor_target``, ``flavor_target_factory``) for every test here."""

from tests.support.azure import flavor, flavor_target, flavor_target_factory

__all__ = ["flavor", "flavor_target", "flavor_target_factory"]
