"""`python -m actors.providers`: print the README's parameter tables."""

from . import param_tables

print(param_tables())
