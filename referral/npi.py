"""National Provider Identifier (NPI) check digit (docs/domain.md section 4).

The tenth digit is a Luhn check digit computed over the prefix "80840" and the
first nine digits.
"""

from __future__ import annotations

import re

_NPI_RE = re.compile(r"^\d{10}$")
_NINE_DIGITS = re.compile(r"\d{9}")


#: A digit doubled by Luhn's rule, its digits summed (``7 -> 14 -> 5``).
_DOUBLED = {str(d): (2 * d if d < 5 else 2 * d - 9) for d in range(10)}
_PLAIN = {str(d): d for d in range(10)}


def npi_check_digit(first_nine: str) -> int:
    """Return the Luhn check digit for the nine-digit NPI body ``first_nine``."""
    if not _NINE_DIGITS.fullmatch(first_nine):
        raise ValueError("an NPI body is nine digits")
    # 24 is the constant contribution of the "80840" prefix; every second digit from the
    # right, starting with the last, is doubled (an import checks millions of NPIs).
    total = (24 + sum(_DOUBLED[c] for c in first_nine[::-2])
             + sum(_PLAIN[c] for c in first_nine[-2::-2]))
    return (10 - total % 10) % 10


def is_valid_npi(value: str) -> bool:
    """True when ``value`` is ten digits whose last digit is the correct check digit."""
    if not isinstance(value, str) or not _NPI_RE.match(value):
        return False
    return npi_check_digit(value[:9]) == int(value[9])


def make_npi(first_nine: str) -> str:
    """Return the full ten-digit NPI for a nine-digit body."""
    return first_nine + str(npi_check_digit(first_nine))
