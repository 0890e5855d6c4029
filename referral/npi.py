"""National Provider Identifier (NPI) check digit (docs/domain.md section 4).

The tenth digit is a Luhn check digit computed over the prefix "80840" and the
first nine digits.
"""

from __future__ import annotations

import re

_NPI_RE = re.compile(r"[0-9]{10}")
_NINE_DIGITS = re.compile(r"[0-9]{9}")


#: A digit's byte mapped to the digit doubled by Luhn's rule, its digits summed
#: (``7 -> 14 -> 5``), and to the digit itself: sums of translated bytes run in C (an
#: import checks millions of NPIs).
_DOUBLED = bytes.maketrans(b"0123456789", bytes(2 * d if d < 5 else 2 * d - 9 for d in range(10)))
_PLAIN = bytes.maketrans(b"0123456789", bytes(range(10)))


def _check_digit(body: bytes) -> int:
    # 24 is the constant contribution of the "80840" prefix; every second digit from the
    # right, starting with the last, is doubled
    total = 24 + sum(body[::-2].translate(_DOUBLED)) + sum(body[-2::-2].translate(_PLAIN))
    return (10 - total % 10) % 10


def npi_check_digit(first_nine: str) -> int:
    """Return the Luhn check digit for the nine-digit NPI body ``first_nine``."""
    if not isinstance(first_nine, str) or not _NINE_DIGITS.fullmatch(first_nine):
        raise ValueError("an NPI body is nine digits")
    return _check_digit(first_nine.encode("ascii"))


def is_valid_npi(value: str) -> bool:
    """True when ``value`` is ten digits (0-9) whose last digit is the correct check digit."""
    if not isinstance(value, str) or not _NPI_RE.fullmatch(value):
        return False
    digits = value.encode("ascii")
    return _check_digit(digits[:9]) == digits[9] - 48  # 48: the byte of "0"


def make_npi(first_nine: str) -> str:
    """Return the full ten-digit NPI for a nine-digit body."""
    return first_nine + str(npi_check_digit(first_nine))
