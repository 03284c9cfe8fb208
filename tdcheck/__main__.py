"""``python -m tdcheck``."""

from tdcheck.cli import main

if __name__ == "__main__":
    main()
