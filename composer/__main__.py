"""``python -m composer``."""
from .cli import main

main()
