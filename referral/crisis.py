"""Crisis wording and detection (docs/domain.md section 3).

Every patient-facing surface shows the 988 notice; free text that signals a
crisis must surface it before anything else.
"""

from __future__ import annotations

import re

CRISIS_MESSAGE = ("If you or someone you know is struggling or in crisis, help is available. "
                  "Call or text 988 or chat 988lifeline.org. In immediate danger, call 911.")

_SIGNALS = re.compile(
    r"suicid\w*|kill(?:ing)?\s+(?:my|him|her|them)sel(?:f|ves)|"
    r"end(?:ing)?\s+(?:my\s+life|it\s+all)|take\s+my\s+(?:own\s+)?life|"
    r"want(?:s|ed)?\s+to\s+die|better\s+off\s+dead|no\s+reason\s+to\s+live|"
    r"don'?t\s+want\s+to\s+(?:live|be\s+alive|wake\s+up)|"
    r"self[\s\-]*harm\w*|hurt(?:ing)?\s+myself|cut(?:ting)?\s+myself|"
    r"overdos\w*|\bod(?:'?d|ed)?\b", re.IGNORECASE)


def signals_crisis(text: str | None) -> bool:
    """True when free text contains words that signal a crisis."""
    return bool(text) and bool(_SIGNALS.search(text))


def crisis_notice() -> dict:
    """The crisis block an answer carries before any results."""
    return {"message": CRISIS_MESSAGE, "call": "988", "text": "988",
            "chat": "https://988lifeline.org", "emergency": "911"}
