"""Controlled vocabularies of the directory (see docs/domain.md).

Every vocabulary maps accepted spellings to one canonical value. Input is
case-insensitive and tolerant of spaces, hyphens and underscores; output is
always the canonical value, in the vocabulary's own order.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .i18n import N_, gettext, translations

ROLES = ("therapist", "prescriber")

#: Therapy modalities (docs/domain.md section 2), with a plain-language note for patients.
MODALITIES: dict[str, str] = {
    "CBT": N_("Cognitive behavioral therapy: changing unhelpful thoughts and habits."),
    "DBT": N_("Dialectical behavior therapy: skills for intense emotions and self-harm urges."),
    "EMDR": N_("Eye movement desensitization and reprocessing: processing traumatic memories."),
    "ERP": N_("Exposure and response prevention: the first-line therapy for OCD."),
    "CPT": N_("Cognitive processing therapy: working through trauma-related beliefs."),
    "PE": N_("Prolonged exposure: gradually facing trauma memories and reminders."),
    "ACT": N_("Acceptance and commitment therapy: acting on your values alongside difficult "
               "feelings."),
    "IPT": N_("Interpersonal therapy: improving relationships and life transitions."),
    "BA": N_("Behavioral activation: rebuilding rewarding activities to lift mood."),
    "CBT-I": N_("CBT for insomnia: the recommended first treatment for chronic insomnia."),
    "MBCT": N_("Mindfulness-based cognitive therapy: mindfulness skills that help prevent "
                "relapse."),
    "PSYCHODYNAMIC": N_("Psychodynamic therapy: understanding patterns rooted in past experience."),
    "FAMILY": N_("Family systems therapy: working with family or partners together."),
    "MI": N_("Motivational interviewing: building your own motivation to change, e.g. substance "
              "use."),
    "PSYCHOEDUCATION": N_("Psychoeducation: learning about a condition and how to manage it."),
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
    "depression": N_("depression"), "anxiety": N_("anxiety"), "panic": N_("panic"),
    "ocd": N_("OCD"), "ptsd": N_("PTSD"), "trauma": N_("trauma"),
    "emotion_dysregulation": N_("emotion dysregulation"), "self_harm": N_("self-harm"),
    "bpd": N_("BPD"), "bipolar": N_("bipolar disorder"), "adhd": N_("ADHD"),
    "insomnia": N_("insomnia"), "substance_use": N_("substance use"), "grief": N_("grief"),
    "relationships": N_("relationships"), "life_transitions": N_("life transitions"),
}

AGE_GROUPS = ("child", "adolescent", "adult", "older_adult")
#: Age groups in plain words: as a choice, and as the people a provider sees.
AGE_GROUP_LABELS = {"child": N_("Child"), "adolescent": N_("Adolescent"), "adult": N_("Adult"),
                    "older_adult": N_("Older adult")}
AGE_GROUP_PLURALS = {"child": N_("children"), "adolescent": N_("adolescents"),
                     "adult": N_("adults"), "older_adult": N_("older adults")}

#: Services and populations a listing can declare (what a real directory records beyond
#: approaches and concerns), with the words a patient sees.
SPECIALTIES: dict[str, str] = {
    "mat": N_("Medication for opioid use disorder (e.g. buprenorphine / Suboxone)"),
    "lgbtq_affirming": N_("LGBTQ+ affirming"),
    "veterans": N_("Works with veterans and military families"),
    "perinatal": N_("Pregnancy and postpartum (perinatal) mental health"),
    "couples": N_("Couples counseling"),
    "eating_disorders": N_("Eating disorders"),
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
    "psychologist": N_("Psychologist"), "clinical_social_worker": N_("Clinical social worker"),
    "counselor": N_("Counselor"), "marriage_family_therapist": N_("Marriage and family therapist"),
    "psychoanalyst": N_("Psychoanalyst"), "behavior_analyst": N_("Behavior analyst"),
    "psychiatrist": N_("Psychiatrist"), "psychiatric_np": N_("Psychiatric nurse practitioner"),
    "nurse_practitioner": N_("Nurse practitioner"), "primary_care": N_("Primary-care doctor"),
    "physician_assistant": N_("Physician assistant"),
    "addiction_medicine": N_("Addiction medicine"),
    "prescribing_psychologist": N_("Prescribing psychologist"),
}

#: Languages by ISO 639 code, with the English name (also accepted as input).
LANGUAGES: dict[str, str] = {
    "en": N_("English"), "es": N_("Spanish"), "zh": N_("Chinese"), "yue": N_("Cantonese"),
    "cmn": N_("Mandarin"), "tl": N_("Tagalog"), "vi": N_("Vietnamese"), "ar": N_("Arabic"),
    "fr": N_("French"), "ko": N_("Korean"), "ru": N_("Russian"), "de": N_("German"),
    "ht": N_("Haitian Creole"), "hi": N_("Hindi"), "pt": N_("Portuguese"), "it": N_("Italian"),
    "pl": N_("Polish"), "ur": N_("Urdu"), "fa": N_("Persian"), "ja": N_("Japanese"),
    "gu": N_("Gujarati"), "bn": N_("Bengali"), "pa": N_("Punjabi"), "he": N_("Hebrew"),
    "hy": N_("Armenian"), "km": N_("Khmer"), "hmn": N_("Hmong"), "so": N_("Somali"),
    "am": N_("Amharic"), "uk": N_("Ukrainian"), "el": N_("Greek"), "ne": N_("Nepali"),
    "ase": N_("American Sign Language"),
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
    "AL": N_("Alabama"), "AK": N_("Alaska"), "AZ": N_("Arizona"), "AR": N_("Arkansas"),
    "CA": N_("California"), "CO": N_("Colorado"), "CT": N_("Connecticut"), "DE": N_("Delaware"),
    "DC": N_("District of Columbia"), "FL": N_("Florida"), "GA": N_("Georgia"), "HI": N_("Hawaii"),
    "ID": N_("Idaho"), "IL": N_("Illinois"), "IN": N_("Indiana"), "IA": N_("Iowa"),
    "KS": N_("Kansas"), "KY": N_("Kentucky"), "LA": N_("Louisiana"), "ME": N_("Maine"),
    "MD": N_("Maryland"), "MA": N_("Massachusetts"), "MI": N_("Michigan"), "MN": N_("Minnesota"),
    "MS": N_("Mississippi"), "MO": N_("Missouri"), "MT": N_("Montana"), "NE": N_("Nebraska"),
    "NV": N_("Nevada"), "NH": N_("New Hampshire"), "NJ": N_("New Jersey"), "NM": N_("New Mexico"),
    "NY": N_("New York"), "NC": N_("North Carolina"), "ND": N_("North Dakota"), "OH": N_("Ohio"),
    "OK": N_("Oklahoma"), "OR": N_("Oregon"), "PA": N_("Pennsylvania"), "RI": N_("Rhode Island"),
    "SC": N_("South Carolina"), "SD": N_("South Dakota"), "TN": N_("Tennessee"), "TX": N_("Texas"),
    "UT": N_("Utah"), "VT": N_("Vermont"), "VA": N_("Virginia"), "WA": N_("Washington"),
    "WV": N_("West Virginia"), "WI": N_("Wisconsin"), "WY": N_("Wyoming"), "PR": N_("Puerto Rico"),
    "GU": N_("Guam"), "VI": N_("U.S. Virgin Islands"), "AS": N_("American Samoa"),
    "MP": N_("Northern Mariana Islands"),
}


def fold(value: str) -> str:
    """Fold case, spaces, hyphens and underscores so spellings compare equal."""
    return re.sub(r"[\s_\-./&]+", "", value).casefold()


def modality_name(code: str) -> str:
    """An approach's name in plain words, from its note (``PSYCHODYNAMIC`` ->
    ``Psychodynamic therapy``; ``EMDR`` -> ``Eye movement ... reprocessing (EMDR)``):
    the code is added only when the name does not already say it."""
    return _modality_name(code, translations())


@functools.lru_cache(maxsize=1024)
def _modality_name(code: str, catalog) -> str:
    # Per catalog (language): a search answer names the same few approaches many times.
    name = catalog.ugettext(MODALITIES[code]).split(":", 1)[0]
    return name if fold(code) in fold(name) else f"{name} ({code})"


def modality_note(code: str) -> str:
    """What an approach is for, in a few plain words (the part of its note after the name)."""
    note = gettext(MODALITIES[code]).split(":", 1)[1].strip()
    return note[:1].upper() + note[1:]


#: Each vocabulary's labels as ``term_label`` shows them (approaches: ``modality_name``).
_TERM_LABELS = {
    "language": LANGUAGES, "concern": CONCERN_LABELS, "specialty": SPECIALTIES,
    "role": {"therapist": N_("Therapists"), "prescriber": N_("Prescribers")},
    "gender": {"female": N_("Women"), "male": N_("Men"), "non-binary": N_("Non-binary providers")},
    "state": STATES, "provider_type": PROVIDER_TYPE_LABELS, "age_group": AGE_GROUP_LABELS,
}


def term_label(name: str, value: str) -> str:
    """A vocabulary value in the words a patient reads (``("language", "es")`` ->
    ``Spanish``; ``("role", "prescriber")`` -> ``Prescribers``); insurers by their names,
    which are not translated."""
    if name == "modality":
        return modality_name(value)
    if name == "insurance" and value in PAYERS:
        return PAYERS[value][0]
    label = _TERM_LABELS.get(name, {}).get(value)
    label = gettext(label) if label else value.replace("_", " ")
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
