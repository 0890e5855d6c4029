"""Crisis detection phrase by phrase (English and Spanish), and everyday phrases that must
not bring the crisis notice."""

from __future__ import annotations

import pytest

from referral.crisis import signals_crisis

CRISIS = [
    # suicide, direct
    "I want to kill myself", "thinking about suicide", "suicidal thoughts", "i want to die",
    "planning to end my life", "take my own life", "ending it all",
    # passive and indirect
    "i dont want to be here anymore", "I don\u2019t want to be alive", "better off dead",
    "everyone would be better off without me", "no reason to live", "I wish I was dead",
    "wish i could disappear", "I can't go on", "tired of living", "no point in living",
    "i want it all to end", "I hope I never wake up", "don't want to exist",
    # self-harm
    "self-harm", "self harm", "cutting myself", "I keep hurting myself", "burning myself",
    "self injury",
    # overdose
    "took an overdose", "overdosed last night", "I OD'd", "took too many pills",
    # harm to others
    "I want to hurt someone", "thoughts of killing my wife", "I might hurt my kids",
    "want to kill him",
    # Spanish
    "quiero morir", "quiero morirme", "no quiero vivir", "pienso en suicidarme", "matarme",
    "quitarme la vida", "hacerme daño", "me quiero cortar, cortarme", "sobredosis",
    "no quiero estar aquí", "quiero matar a alguien", "autolesiones",
]
NOT_CRISIS = [
    "kill time", "dying to know", "anxiety therapist", "Dr. Harmon", "suitable CBT",
    "therapist for grief after my dad died", "killer headaches", "I could die laughing",
    "skill building", "odd sleep schedule", "overthinking", "cutting down on drinking",
    "end of life care", "hurt feelings", "terapia para la ansiedad", "me duele la cabeza",
]


@pytest.mark.parametrize("text", CRISIS)
def test_crisis_wording_is_recognised(text):
    assert signals_crisis(text)


@pytest.mark.parametrize("text", NOT_CRISIS)
def test_everyday_wording_is_not_a_crisis(text):
    assert not signals_crisis(text)
