"""Named emulator settings for the ``openai_files_emulator`` / ``openai_files_connection`` fixtures
(the package's pytest plugin): ``@FILES_STAY_UPLOADED`` on a test gives it an emulator whose files
wait for the test to move the clock."""

from __future__ import annotations

import pytest

#: How long files stay ``uploaded`` under ``FILES_STAY_UPLOADED`` (until a test advances the clock).
PROCESSING_DELAY = 3600.0

#: Files stay ``uploaded`` (``pending`` on Azure) until the test advances the emulator's clock.
FILES_STAY_UPLOADED = pytest.mark.openai_files_emulator(processing_delay=PROCESSING_DELAY)

#: Malformed fine-tune/batch content is reported on the file (status ``error``), as Azure OpenAI does
#: (``file_validation="status"``); OpenAI reports it on the job.
FILE_STATUS_ERRORS = pytest.mark.openai_files_emulator(file_validation="status")
