"""Controlled vocabularies of the directory (see docs/domain.md).

Every vocabulary maps accepted spellings to one canonical value. Input is
case-insensitive and tolerant of spaces, hyphens and underscores; output is
always the canonical value, in the vocabulary's own order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROLES = ("therapist", "prescriber")

#: Therapy modalities (docs/domain.md section 2), with a plain-language note for patients.
MODALITIES: dict[str, str] = {
    "CBT": "Cognitive behavioral therapy: changing unhelpful thoughts and habits.",
    "DBT": "Dialectical behavior therapy: skills for intense emotions and self-harm urges.",
    "EMDR": "Eye movement desensitization and reprocessing: processing traumatic memories.",
    "ERP": "Exposure and response prevention: the first-line therapy for OCD.",
    "CPT": "Cognitive processing therapy: working through trauma-related beliefs.",
    "PE": "Prolonged exposure: gradually facing trauma memories and reminders.",
    "ACT": "Acceptance and commitment therapy: acting on your values alongside difficult feelings.",
    "IPT": "Interpersonal therapy: improving relationships and life transitions.",
    "BA": "Behavioral activation: rebuilding rewarding activities to lift mood.",
    "CBT-I": "CBT for insomnia: the recommended first treatment for chronic insomnia.",
    "MBCT": "Mindfulness-based cognitive therapy: mindfulness skills that help prevent relapse.",
    "PSYCHODYNAMIC": "Psychodynamic therapy: understanding patterns rooted in past experience.",
    "FAMILY": "Family systems therapy: working with family or partners together.",
    "MI": "Motivational interviewing: building your own motivation to change, e.g. substance use.",
    "PSYCHOEDUCATION": "Psychoeducation: learning about a condition and how to manage it.",
}

#: Concerns and their evidence-informed therapy modalities (docs/domain.md section 2).
#: A suggestion to the patient, never a diagnosis.
CONCERN_MODALITIES: dict[str, tuple[str, ...]] = {
    "depression": ("CBT", "IPT", "BA", "MBCT"),
    "anxiety": ("CBT", "ACT"),
    "panic": ("CBT", "ACT"),
    "ocd": ("ERP", "CBT"),
    "ptsd": ("CPT", "PE", "EMDR"),
    "trauma": ("CPT", "PE", "EMDR"),
    "emotion_dysregulation": ("DBT",),
    "self_harm": ("DBT",),
    "bpd": ("DBT",),
    "bipolar": ("PSYCHOEDUCATION", "CBT", "IPT", "FAMILY"),
    "adhd": ("CBT",),
    "insomnia": ("CBT-I",),
    "substance_use": ("MI", "CBT"),
    "grief": ("IPT", "FAMILY", "PSYCHODYNAMIC"),
    "relationships": ("IPT", "FAMILY", "PSYCHODYNAMIC"),
    "life_transitions": ("IPT", "FAMILY", "PSYCHODYNAMIC"),
}
CONCERNS = tuple(CONCERN_MODALITIES)
CONCERN_LABELS = {
    "depression": "depression", "anxiety": "anxiety", "panic": "panic", "ocd": "OCD",
    "ptsd": "PTSD", "trauma": "trauma", "emotion_dysregulation": "emotion dysregulation",
    "self_harm": "self-harm", "bpd": "BPD", "bipolar": "bipolar disorder", "adhd": "ADHD",
    "insomnia": "insomnia", "substance_use": "substance use", "grief": "grief",
    "relationships": "relationships", "life_transitions": "life transitions",
}

AGE_GROUPS = ("child", "adolescent", "adult", "older_adult")

#: Services and populations a listing can declare (what a real directory records beyond
#: approaches and concerns), with the words a patient sees.
SPECIALTIES: dict[str, str] = {
    "mat": "Medication for opioid use disorder (e.g. buprenorphine / Suboxone)",
    "lgbtq_affirming": "LGBTQ+ affirming",
    "veterans": "Works with veterans and military families",
    "perinatal": "Pregnancy and postpartum (perinatal) mental health",
    "couples": "Couples counseling",
    "eating_disorders": "Eating disorders",
}

#: Gender categories a patient can filter by; listings describe themselves in free text.
GENDERS = ("female", "male", "non-binary")
_GENDER_WORDS = {
    "female": {"female", "woman", "f", "cis woman", "cisgender woman", "trans woman",
               "transgender woman", "she/her"},
    "male": {"male", "man", "m", "cis man", "cisgender man", "trans man", "transgender man",
             "he/him"},
    "non-binary": {"non-binary", "nonbinary", "non binary", "enby", "genderqueer",
                   "genderfluid", "agender", "they/them"},
}


def gender_category(description: str | None) -> str | None:
    """The filterable category of a self-described gender, or None if it has none."""
    if not description:
        return None
    folded = " ".join(description.casefold().replace("-", " ").split())
    for category, spellings in _GENDER_WORDS.items():
        if folded in {" ".join(s.replace("-", " ").split()) for s in spellings}:
            return category
    return None

#: Provider types and the role each one has.
PROVIDER_TYPES: dict[str, str] = {
    "psychologist": "therapist",
    "clinical_social_worker": "therapist",
    "counselor": "therapist",
    "marriage_family_therapist": "therapist",
    "psychoanalyst": "therapist",
    "behavior_analyst": "therapist",
    "psychiatrist": "prescriber",
    "psychiatric_np": "prescriber",
    "nurse_practitioner": "prescriber",
    "primary_care": "prescriber",
    "physician_assistant": "prescriber",
    "addiction_medicine": "prescriber",
    "prescribing_psychologist": "prescriber",
}

#: Provider types in plain words.
PROVIDER_TYPE_LABELS = {
    "psychologist": "Psychologist", "clinical_social_worker": "Clinical social worker",
    "counselor": "Counselor", "marriage_family_therapist": "Marriage and family therapist",
    "psychoanalyst": "Psychoanalyst", "behavior_analyst": "Behavior analyst",
    "psychiatrist": "Psychiatrist", "psychiatric_np": "Psychiatric nurse practitioner",
    "nurse_practitioner": "Nurse practitioner", "primary_care": "Primary-care doctor",
    "physician_assistant": "Physician assistant", "addiction_medicine": "Addiction medicine",
    "prescribing_psychologist": "Prescribing psychologist",
}

#: Languages by ISO 639 code, with the English name (also accepted as input).
LANGUAGES: dict[str, str] = {
    "en": "English", "es": "Spanish", "zh": "Chinese", "yue": "Cantonese",
    "cmn": "Mandarin", "tl": "Tagalog", "vi": "Vietnamese", "ar": "Arabic",
    "fr": "French", "ko": "Korean", "ru": "Russian", "de": "German",
    "ht": "Haitian Creole", "hi": "Hindi", "pt": "Portuguese", "it": "Italian",
    "pl": "Polish", "ur": "Urdu", "fa": "Persian", "ja": "Japanese",
    "gu": "Gujarati", "bn": "Bengali", "pa": "Punjabi", "he": "Hebrew",
    "hy": "Armenian", "km": "Khmer", "hmn": "Hmong", "so": "Somali",
    "am": "Amharic", "uk": "Ukrainian", "el": "Greek", "ne": "Nepali",
    "ase": "American Sign Language",
}

#: Normalized payer names: canonical slug -> (display name, other accepted spellings).
PAYERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "aetna": ("Aetna", ()),
    "anthem": ("Anthem", ("elevance",)),
    "bcbs": ("Blue Cross Blue Shield", ("blue cross", "blue shield", "bluecross blueshield")),
    "cigna": ("Cigna", ("evernorth",)),
    "unitedhealthcare": ("UnitedHealthcare", ("united healthcare", "uhc", "optum", "united")),
    "humana": ("Humana", ()),
    "kaiser": ("Kaiser Permanente", ("kaiser permanente",)),
    "medicare": ("Medicare", ()),
    "medicaid": ("Medicaid", ()),
    "tricare": ("TRICARE", ()),
    "magellan": ("Magellan Health", ("magellan health",)),
    "carelon": ("Carelon Behavioral Health", ("beacon", "beacon health options")),
    "molina": ("Molina Healthcare", ("molina healthcare",)),
    "oscar": ("Oscar Health", ("oscar health",)),
    "ambetter": ("Ambetter", ()),
    "healthnet": ("Health Net", ("health net",)),
}

#: USPS codes of the states, DC and the territories where providers are licensed.
STATES: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
    "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon",
    "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota",
    "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia",
    "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
    "PR": "Puerto Rico", "GU": "Guam", "VI": "U.S. Virgin Islands", "AS": "American Samoa",
    "MP": "Northern Mariana Islands",
}


def fold(value: str) -> str:
    """Fold case, spaces, hyphens and underscores so spellings compare equal."""
    return re.sub(r"[\s_\-./&]+", "", value).casefold()


def modality_name(code: str) -> str:
    """An approach's name in plain words, from its note (``PSYCHODYNAMIC`` ->
    ``Psychodynamic therapy``; ``EMDR`` -> ``Eye movement ... reprocessing (EMDR)``):
    the code is added only when the name does not already say it."""
    name = MODALITIES[code].split(":", 1)[0]
    return name if fold(code) in fold(name) else f"{name} ({code})"


def modality_note(code: str) -> str:
    """What an approach is for, in a few plain words (the part of its note after the name)."""
    note = MODALITIES[code].split(":", 1)[1].strip()
    return note[:1].upper() + note[1:]


def term_label(name: str, value: str) -> str:
    """A vocabulary value in the words a patient reads (``("language", "es")`` ->
    ``Spanish``; ``("role", "prescriber")`` -> ``Prescribers``)."""
    labels = {
        "language": LANGUAGES, "concern": CONCERN_LABELS, "specialty": SPECIALTIES,
        "insurance": {slug: display for slug, (display, _) in PAYERS.items()},
        "role": {"therapist": "Therapists", "prescriber": "Prescribers"},
        "gender": {"female": "Women", "male": "Men", "non-binary": "Non-binary providers"},
        "state": STATES, "provider_type": PROVIDER_TYPE_LABELS,
    }
    if name == "modality":
        return modality_name(value)
    label = labels.get(name, {}).get(value) or value.replace("_", " ")
    return label[:1].upper() + label[1:]


@dataclass(frozen=True)
class Vocabulary:
    """A controlled vocabulary: canonical values in order, plus accepted spellings."""

    name: str
    canonical: tuple[str, ...]
    aliases: dict[str, str]

    @classmethod
    def build(cls, name: str, canonical, extra: dict[str, str] | None = None) -> Vocabulary:
        """Make a vocabulary whose values are also accepted under the spellings in ``extra``."""
        canonical = tuple(canonical)
        aliases = {fold(value): value for value in canonical}
        for spelling, value in (extra or {}).items():
            aliases[fold(spelling)] = value
        return cls(name, canonical, aliases)

    def lookup(self, value: str) -> str | None:
        """Return the canonical value for ``value``, or None when it is not in the vocabulary."""
        if not isinstance(value, str):
            return None
        return self.aliases.get(fold(value))

    def order(self, values) -> list[str]:
        """Deduplicate canonical ``values`` and put them in vocabulary order."""
        wanted = set(values)
        return [value for value in self.canonical if value in wanted]


VOCABULARIES: dict[str, Vocabulary] = {
    "role": Vocabulary.build("role", ROLES),
    "provider_type": Vocabulary.build(
        "provider_type", PROVIDER_TYPES,
        {"lcsw": "clinical_social_worker", "social_worker": "clinical_social_worker",
         "lpc": "counselor", "mental_health_counselor": "counselor",
         "mft": "marriage_family_therapist", "lmft": "marriage_family_therapist",
         "pmhnp": "psychiatric_np", "psychiatric_nurse_practitioner": "psychiatric_np",
         "np": "nurse_practitioner", "pa": "physician_assistant"}),
    "modality": Vocabulary.build(
        "modality", MODALITIES,
        {"cognitive behavioral therapy": "CBT", "dialectical behavior therapy": "DBT",
         "cbti": "CBT-I", "family systems": "FAMILY", "motivational interviewing": "MI"}),
    "concern": Vocabulary.build(
        "concern", CONCERNS,
        {"obsessive compulsive disorder": "ocd", "post traumatic stress": "ptsd",
         "bipolar disorder": "bipolar", "borderline personality disorder": "bpd",
         "substance": "substance_use", "addiction": "substance_use", "sleep": "insomnia",
         "panic disorder": "panic", "relationship": "relationships"}),
    "specialty": Vocabulary.build(
        "specialty", SPECIALTIES,
        {"medication for opioid use disorder": "mat", "moud": "mat",
         "lgbtq": "lgbtq_affirming", "lgbtq+": "lgbtq_affirming", "veteran": "veterans",
         "eating disorder": "eating_disorders"}),
    "age_group": Vocabulary.build(
        "age_group", AGE_GROUPS,
        {"children": "child", "kids": "child", "teen": "adolescent", "teens": "adolescent",
         "adults": "adult", "senior": "older_adult", "seniors": "older_adult",
         "older adults": "older_adult"}),
    "language": Vocabulary.build(
        "language", LANGUAGES, {name: code for code, name in LANGUAGES.items()}
        | {"asl": "ase", "farsi": "fa", "mandarin chinese": "cmn"}),
    "insurance": Vocabulary.build(
        "insurance", PAYERS,
        {spelling: slug for slug, (display, others) in PAYERS.items()
         for spelling in (display, *others)}),
    "state": Vocabulary.build("state", STATES, {name: code for code, name in STATES.items()}),
    "gender": Vocabulary.build("gender", GENDERS, {"woman": "female", "man": "male",
                                                   "nonbinary": "non-binary"}),
}
