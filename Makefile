# Two commands do all the set-up on a fresh machine:
#   make demo   - virtual environment, dependencies, database, 5,000 demo providers, serve :5000
#   make test   - virtual environment with the dev extras (and Debian's Chromium for the
#                 browser tests, installed when missing), then the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
HOST ?= 127.0.0.1
PORT ?= 5000
PYTEST_ARGS ?=
CHROMIUM ?= /usr/bin/chromium

.PHONY: demo test test-postgres lint serve-prod venv browser clean translations

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# axe-core (npm) for the accessibility audits of the browser tests; ignored by git.
AXE := .axe/node_modules/axe-core/axe.min.js
$(AXE):
	npm install --silent --no-audit --no-fund --prefix .axe axe-core@4

venv: $(STAMP) $(AXE)

# The demo runs the delivery worker (webhooks, emails) beside the server; without SMTP_URL the
# emails go to the local outbox, shown at /clinic/outbox. The worker's log: instance/worker.log.
demo: $(STAMP)
	$(BIN)/referral init-db
	$(BIN)/referral seed --count 5000 --seed 1 --if-empty
	@echo "Demo clinic admin (sign in at http://$(HOST):$(PORT)/clinic/sign-in):"
	$(BIN)/referral user create 1 admin@demo.example --role admin --or-reset
	@mkdir -p instance
	$(BIN)/referral worker >> instance/worker.log 2>&1 & worker=$$!; \
	  trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	  echo "Delivery worker $$worker started (log: instance/worker.log)"; \
	  $(BIN)/referral run --host $(HOST) --port $(PORT)

# The browser tests drive Debian's Chromium (Playwright's own browser download cannot work here).
browser:
	@test -x $(CHROMIUM) || { echo "Installing Chromium (Debian package) for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

test: $(STAMP) $(AXE) browser
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest $(PYTEST_ARGS)

# The same suite on PostgreSQL (TEST_DATABASE_URL defaults to the local server).
test-postgres: $(STAMP) $(AXE) browser
	CHROMIUM=$(CHROMIUM) TEST_DATABASE_URL=$${TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test} \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

# Lint: ruff with the rule set in pyproject.toml (E, F, W, B, UP, SIM, I), and dead code.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/vulture referral search_index seeds config.py tests bench --exclude referral/migrations --min-confidence 80

# Translations of the patient pages (referral/translations, babel.cfg): extract every marked
# string, add new ones to the Spanish catalog (untranslated until someone writes them; the
# catalog test fails meanwhile), drop gone ones, and compile the .mo that is committed.
POT := $(VENV)/messages.pot
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg --no-location --sort-output --width 100 -o $(POT) .
	$(BIN)/pybabel update -i $(POT) -d referral/translations --width 100 --ignore-obsolete \
		--no-fuzzy-matching --ignore-pot-creation-date
	$(BIN)/pybabel compile -d referral/translations --statistics

# Production serving: PostgreSQL from DATABASE_URL, SECRET_KEY required (see README).
serve-prod: $(STAMP)
	REFERRAL_ENV=production $(BIN)/referral init-db
	REFERRAL_ENV=production $(BIN)/gunicorn -c gunicorn.conf.py

clean:
	rm -rf $(VENV) instance .pytest_cache *.egg-info
