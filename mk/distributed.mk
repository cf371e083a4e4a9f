# make test-distributed: the example DAGs, a mapped fan-out and crash cases under CeleryExecutor with two
# workers that share no disk, Redis, PostgreSQL, moto (S3) and the emulator, all on loopback.
# Included from the Makefile; needs its venv target and BIN variable. Budget: under 20 minutes on 2 cores.
DISTRIBUTED_ARGS ?=

.PHONY: test-distributed

test-distributed: venv
	PYTHON=$(BIN)/python scripts/distributed/run.sh $(DISTRIBUTED_ARGS)
