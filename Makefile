# grounds: build, demo, test, install, bench.
# Every target works on a fresh machine: what the tests need is installed by `make test-deps`.

CARGO        ?= cargo
PREFIX       ?= /usr/local
TARGET       := x86_64-unknown-linux-gnu
TARGET_DIR   := $(or $(CARGO_TARGET_DIR),target)
DEBUG_BIN    := $(TARGET_DIR)/$(TARGET)/debug/grounds
RELEASE_BIN  := $(TARGET_DIR)/$(TARGET)/release/grounds

PYTHON_BASE  := grounds-test/python:bookworm

.PHONY: build release demo test test-deps base-image lint install bench clean

## build: the debug build of the workspace (grounds and its entries, static as images need), for demo and tests
build:
	$(CARGO) build --workspace

## release: the optimised build of the workspace, used by install and bench
release:
	$(CARGO) build --workspace --release

## demo: build grounds and run the main job (titanic, attached) on the data in fixtures/
demo: build
	$(DEBUG_BIN) train attached fixtures/titanic/task.toml

## test-deps: install what the tests need (python3 for command tasks; the Docker engine must be running)
test-deps:
	@command -v python3 >/dev/null 2>&1 || { apt-get update && apt-get install -y --no-install-recommends python3; }
	@docker info >/dev/null 2>&1 || { echo "make test: the Docker engine is not reachable (DOCKER_HOST=$${DOCKER_HOST:-unset})" >&2; exit 1; }

## base-image: a Python image made from Debian packages (debootstrap), for command tasks in Docker tests
base-image:
	container/python-base.sh $(PYTHON_BASE)

## lint: clippy; outside tests nothing may unwrap, expect or panic (src/main.rs denies it)
lint:
	$(CARGO) clippy --workspace --all-targets

## test: lint, install and start what the tests need (moto, a registry: tests/services.sh), then build and run every
## test of the workspace. The entries grounds' tests run jobs with are built by the same `cargo test`: each entry
## crate has a test that runs its binary, so cargo builds them once, with the tests' features (a separate
## `cargo build --workspace` would build many crates a second time, with other features)
test: test-deps base-image lint
	tests/services.sh $(CARGO) test --workspace --no-fail-fast

## install: install the release build as $(PREFIX)/bin/grounds, its entries in $(PREFIX)/lib/grounds, its man page and
## bash/zsh/fish completions
SHARE := $(DESTDIR)$(PREFIX)/share
install: release
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/grounds $(SHARE)/man/man1 \
		$(SHARE)/bash-completion/completions $(SHARE)/zsh/site-functions $(SHARE)/fish/vendor_completions.d
	install -m 0755 $(RELEASE_BIN) $(DESTDIR)$(PREFIX)/bin/grounds
	install -m 0755 $(RELEASE_BIN)-entry $(RELEASE_BIN)-builtin $(DESTDIR)$(PREFIX)/lib/grounds/
	$(RELEASE_BIN) man --dir $(SHARE)/man/man1
	$(RELEASE_BIN) completions bash > $(SHARE)/bash-completion/completions/grounds
	$(RELEASE_BIN) completions zsh > $(SHARE)/zsh/site-functions/_grounds
	$(RELEASE_BIN) completions fish > $(SHARE)/fish/vendor_completions.d/grounds.fish

## bench: builtin single-frame task against scikit-learn (installs it into bench/.venv), train local against docker
## run, the edit-run loop (on the SageMaker stand-in too: tests/services.sh starts it), images; writes bench/RESULTS.md
bench: release base-image
	GROUNDS=$(RELEASE_BIN) tests/services.sh bench/run.sh

clean:
	$(CARGO) clean
