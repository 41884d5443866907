PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint demo run emulator openai-emulator anthropic-emulator openapi fmt bench clean migration-regen

$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e ./client
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check service groq_emulator openai_emulator anthropic_emulator client examples demo tests bench alembic
	$(BIN)/ruff format --check service groq_emulator openai_emulator anthropic_emulator client examples demo tests bench alembic
	$(BIN)/mypy service groq_emulator openai_emulator anthropic_emulator client/llm_batch_client demo
	$(BIN)/mypy --python-version 3.10 client/llm_batch_client  # the client supports Python 3.10
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff check --fix service groq_emulator openai_emulator anthropic_emulator client examples demo tests bench alembic
	$(BIN)/ruff format service groq_emulator openai_emulator anthropic_emulator client examples demo tests bench alembic

demo: $(STAMP)
	$(BIN)/python -m demo

run: $(STAMP)
	$(BIN)/python -m uvicorn --factory service.app:serve_app --host 127.0.0.1 --port $${PORT:-8000}

emulator: $(STAMP)
	$(BIN)/python -m groq_emulator --port 8090

openai-emulator: $(STAMP)
	$(BIN)/python -m openai_emulator --port 8091

anthropic-emulator: $(STAMP)
	$(BIN)/python -m anthropic_emulator --port 8092

openapi: $(STAMP)
	$(BIN)/python -m service openapi > openapi.yaml

bench: $(STAMP)
	$(BIN)/python bench/emulator_throughput.py

# The image, built by podman from the Dockerfile and run on SQLite and PostgreSQL, as root (README, "Docker").
.PHONY: image-smoke
image-smoke:
	bash docker/smoke.sh all

clean:
	rm -rf $(VENV) .venv-examples data .pytest_cache .mypy_cache .ruff_cache

# Until the first release the schema has one migration, regenerated from service/models.py.
# After a release, add new revisions instead: .venv/bin/alembic revision --autogenerate -m "..."
migration-regen: $(STAMP)
	rm -f alembic/versions/0001_initial_schema.py /tmp/llm_batch_autogen.db
	DATABASE_URL=sqlite:////tmp/llm_batch_autogen.db $(BIN)/alembic revision --autogenerate -m "initial schema" --rev-id 0001
	$(BIN)/ruff check --fix --quiet alembic/versions
	$(BIN)/ruff format alembic/versions
	rm -f /tmp/llm_batch_autogen.db
