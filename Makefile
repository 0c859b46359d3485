# Shortcuts for the README's commands (all need root).
.PHONY: setup test book lint images clean
setup:
	bash scripts/setup.sh
test:
	bash scripts/test.sh
book:
	bash scripts/book.sh
lint:
	.venv/bin/ruff check lab tests benchmarks scripts
	.venv/bin/mypy lab
images:
	.venv/bin/lab images build
clean:
	.venv/bin/lab clean
