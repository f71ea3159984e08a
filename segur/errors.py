"""Errors that mean "the input was wrong", as opposed to a bug: the CLI prints them and exits 2."""


class InputError(Exception):
    """Bad input from a person: a scenario file, a flag, a path. The message says what and where."""
