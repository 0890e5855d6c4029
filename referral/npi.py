"""National Provider Identifier (NPI) check digit (docs/domain.md section 4).

The tenth digit is a Luhn check digit computed over the prefix "80840" and the
first nine digits.
"""

from __future__ import annotations

import re

_NPI_RE = re.compile(r"^\d{10}$")


def npi_check_digit(first_nine: str) -> int:
    """Return the Luhn check digit for the nine-digit NPI body ``first_nine``."""
    if not re.fullmatch(r"\d{9}", first_nine):
        raise ValueError("an NPI body is nine digits")
    total = 24  # the constant contribution of the "80840" prefix
    for position, char in enumerate(reversed(first_nine)):
        digit = int(char)
        if position % 2 == 0:  # every second digit from the right, starting with the last
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10


def is_valid_npi(value: str) -> bool:
    """True when ``value`` is ten digits whose last digit is the correct check digit."""
    if not isinstance(value, str) or not _NPI_RE.match(value):
        return False
    return npi_check_digit(value[:9]) == int(value[9])


def make_npi(first_nine: str) -> str:
    """Return the full ten-digit NPI for a nine-digit body."""
    return first_nine + str(npi_check_digit(first_nine))
