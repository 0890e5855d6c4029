"""Crisis wording and detection (docs/domain.md section 3).

Every patient-facing surface shows the 988 notice; free text that signals a
crisis must surface it before anything else.
"""

from __future__ import annotations

import re

from .i18n import N_

#: The notice in English (the API's); pages show it in the patient's language.
CRISIS_MESSAGE = N_("If you or someone you know is struggling or in crisis, help is available. "
                    "Call or text 988 or chat 988lifeline.org. In immediate danger, call 911.")

#: Wording that signals a crisis, English and Spanish: suicide and self-harm (direct,
#: passive and indirect), overdose, and harm to others. Each is tested phrase by phrase,
#: and so are everyday phrases that must not match ("kill time", "dying to know").
_PATTERNS = (
    # suicide, direct
    r"suicid\w*", r"kill(?:ing)?\s+(?:my|him|her|them)sel(?:f|ves)",
    r"end(?:ing)?\s+(?:my\s+life|it\s+all|things)", r"take\s+my\s+(?:own\s+)?life",
    r"want(?:s|ed)?\s+to\s+die", r"(?:going|gonna)\s+to\s+die\s+tonight",
    # suicide, passive and indirect
    r"better\s+off\s+(?:dead|without\s+me)", r"no\s+reason\s+to\s+(?:live|go\s+on)",
    r"do(?:n'?t|\s+not)\s+want\s+to\s+(?:live|be\s+alive|wake\s+up|exist|be\s+here)",
    r"wish\s+i\s+(?:was|were|had\s+never\s+been)\s+(?:dead|born|gone)",
    r"wish\s+i\s+could\s+(?:disappear|die|not\s+wake\s+up)",
    r"(?:can'?t|cannot)\s+go\s+on", r"tired\s+of\s+(?:living|being\s+alive)",
    r"no\s+point\s+(?:in\s+)?(?:living|going\s+on)", r"not\s+worth\s+living",
    r"never\s+wake\s+up", r"want\s+it\s+(?:all\s+)?to\s+(?:end|stop)",
    # self-harm
    r"self[\s\-]*(?:harm|injur)\w*",
    r"(?:hurt(?:ing)?|harm(?:ing)?|cut(?:ting)?|burn(?:ing)?)\s+myself",
    # overdose
    r"overdos\w*", r"\bod(?:'d|ed)?\b", r"too\s+many\s+pills",
    # harm to others
    r"(?:kill|hurt|harm|shoot|stab)(?:ing)?\s+(?:someone|somebody|people|him|her|them|"
    r"my\s+(?:wife|husband|partner|mom|mother|dad|father|kids?|boss|family))",
    # Spanish (suicidio, suicidarme: above)
    r"matarme", r"quitarme\s+la\s+vida", r"quiero\s+morir\w*",
    r"no\s+quiero\s+(?:vivir|seguir\s+viviendo|estar\s+aqu[ií]|despertar)",
    r"hacerme\s+da[ñn]o", r"lastimarme", r"cortarme", r"autolesi\w*", r"sobredosis",
    r"matar\s+a\s+(?:alguien|mi)", r"hacerle\s+da[ñn]o\s+a",
)
_SIGNALS = re.compile("|".join(_PATTERNS), re.IGNORECASE)


def signals_crisis(text: str | None) -> bool:
    """True when free text contains words that signal a crisis."""
    return bool(text) and bool(_SIGNALS.search(text.replace("\u2019", "'")))


def crisis_notice() -> dict:
    """The crisis block an answer carries before any results."""
    return {"message": CRISIS_MESSAGE, "call": "988", "text": "988",
            "chat": "https://988lifeline.org", "emergency": "911"}
