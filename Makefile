# pokazy — every task is one command. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The test broker runs on its own port and data dir, so a demo broker on 9092 can keep running.
TEST_ENV := POKAZY_KAFKA_BOOTSTRAP=127.0.0.1:19092 POKAZY_DATA_DIR=.pokazy/test

.PHONY: help install demo test unit integration lint bench compose-check broker-up broker-down java-bot clean

help: ## Show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install pokazy with its pinned dependencies

demo: install ## The main job: local broker + worker, three simulated months, what landed in ClickHouse
	$(BIN)/pokazy demo

test: install ## Every test: starts the local test broker, runs unit and integration tests, stops it
	@$(TEST_ENV) $(BIN)/pokazy stack up
	@status=0; $(TEST_ENV) $(BIN)/pytest tests || status=$$?; \
	  $(TEST_ENV) $(BIN)/pokazy stack down; exit $$status

unit: install ## Unit tests only (nothing running needed)
	$(BIN)/pytest tests/unit

integration: install ## Integration tests only (starts the test broker if needed)
	$(TEST_ENV) $(BIN)/pytest tests/integration

lint: install ## ruff (lint and format check), mypy --strict and the import layers (lint-imports)
	$(BIN)/ruff check streams tests
	$(BIN)/ruff format --check streams tests
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install ## Benchmark: throughput, latency, RSS, restarts vs a raw baseline (a few minutes)
	$(BIN)/pokazy bench --accounts 20000 --json .pokazy/bench.json

compose-check: ## Validate docker-compose.yml with docker-compose 1.29 (installed on first use)
	@"$$(PYTHON=$(PYTHON) scripts/compose-tool.sh)" --project-directory . -f docker-compose.yml config --quiet && echo "docker-compose.yml is valid"

broker-up: install ## Start the local Kafka broker on 127.0.0.1:9092 (data in .pokazy)
	$(BIN)/pokazy stack up

broker-down: install ## Stop the local Kafka broker started by broker-up
	$(BIN)/pokazy stack down

java-bot: ## Build the Java bot example (examples/java-bot/target/pokazy-java-bot.jar; needs mvn)
	mvn -q -B -f examples/java-bot/pom.xml package

clean: ## Remove the venv and local data (keeps the Kafka jar cache in ~/.cache/pokazy)
	rm -rf $(VENV) .pokazy .mypy_cache .ruff_cache .pytest_cache .hypothesis examples/java-bot/target
