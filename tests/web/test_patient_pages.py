"""Issue 15 through the pages (test client, real database and index): ordinary wording,
what was understood as removable chips, no dead ends, true facts on cards, honest fees,
plain-word messages, /match on a first visit, the 988 notice on every patient page."""

from __future__ import annotations

import html
import re

from tests.web.test_clinic_edit_form import opened
from tests.web.test_pages import csrf, text


def cards(page: str) -> dict[str, str]:
    """Each result card's text by the provider's last name."""
    found = {}
    for card in re.findall(r'<article class="card".*?</article>', page, re.S):
        name = re.search(r'<a href="/providers/\d+">\w+ (\w+)</a>', card).group(1)
        found[name] = html.unescape(re.sub(r"<[^>]+>", " ", card))
    return found


def test_ordinary_wording_finds_spanish_speaking_emdr_therapists(client, make_clinic, create):
    _, token = make_clinic()
    create(token, last_name="Rivera", languages=["en", "es"], modalities=["EMDR"],
           concerns=["trauma"])
    create(token, last_name="Smith", languages=["en"], modalities=["EMDR"], concerns=["trauma"])
    for query in ("spanish speaking EMDR therapist for trauma", "spanish-speaking therapist",
                  "therapist who speaks spanish"):
        response = client.get("/", query_string={"q": query, "zip": "02115"})
        page = text(response)
        assert response.status_code == 200
        assert set(cards(page)) == {"Rivera"}, query
        assert 'aria-label="Remove Spanish"' in page  # the chip
        assert re.search(r'<option value="es" selected>Spanish</option>', page)  # the control
    page = text(client.get("/", query_string={
        "q": "spanish speaking EMDR therapist for trauma", "zip": "02115"}))
    remove = html.unescape(re.search(r'href="([^"]+)" aria-label="Remove Spanish"', page)[1])
    assert "q=emdr+therapist+for+trauma" in remove and "zip=02115" in remove
    assert set(cards(text(client.get(remove)))) == {"Rivera", "Smith"}


def test_gender_specialty_and_medication_words(client, make_clinic, create):
    _, token = make_clinic()
    create(token, last_name="Woman", gender="woman", specialties=["lgbtq_affirming"])
    create(token, last_name="Man", gender="man")
    create(token, last_name="Buprenorphine", provider_type="psychiatrist",
           taxonomy_codes=["2084P0800X"], modalities=[], specialties=["mat"])
    assert set(cards(text(client.get("/?q=female+therapist")))) == {"Woman"}
    assert set(cards(text(client.get("/?q=LGBTQ+affirming")))) == {"Woman"}
    assert set(cards(text(client.get("/?q=suboxone")))) == {"Buprenorphine"}


def test_passive_ideation_brings_the_crisis_panel(client):
    page = text(client.get("/?q=i+dont+want+to+be+here+anymore"))
    assert page.index('class="crisis"') < page.index("<h1>")


def test_a_providers_own_bio_never_brings_the_crisis_panel(client, make_clinic, create):
    _, token = make_clinic()
    made = create(token, last_name="Trainer", bio="Certified in suicide prevention training.")
    assert 'class="crisis"' not in text(client.get(f"/providers/{made['id']}"))
    assert 'class="crisis"' not in text(client.get("/?q=Trainer"))


def test_no_results_offer_changes_that_find_providers(client, make_clinic, create):
    _, token = make_clinic()
    create(token, last_name="Pittsfield", zip="01201", address_line1="1 Main St",
           telehealth=False, licensed_states=["MA"], insurance=["cigna"])
    page = text(client.get("/?zip=02115&in_person=true&insurance=aetna&radius_miles=250"))
    assert "0 providers found" in page
    links = dict((html.unescape(label), html.unescape(href)) for href, label in re.findall(
        r'<li><a href="([^"]+)">([^<]+)</a> \(1 provider\)</li>', page))
    assert set(links) == {"Any insurance", "Without \u201cAetna\u201d"}
    assert set(cards(text(client.get(links["Any insurance"])))) == {"Pittsfield"}


def test_did_you_mean_is_offered_only_when_it_finds_someone(client, make_clinic, create):
    _, token = make_clinic("Harbor Counseling")
    create(token, first_name="Leah", last_name="Davis")
    page = text(client.get("/?q=Leha+Davs"))
    suggestion = re.search(r"Did you mean <a href=\"([^\"]+)\">", page)
    assert suggestion, page
    assert set(cards(text(client.get(html.unescape(suggestion[1]))))) == {"Davis"}
    nowhere = text(client.get("/?q=Harbor+Lite+Zzyzx"))
    for href in re.findall(r"Did you mean <a href=\"([^\"]+)\">", nowhere):
        assert cards(text(client.get(html.unescape(href))))


def test_a_page_past_the_last_shows_the_last_page(client, make_clinic, create):
    _, token = make_clinic()
    for number in range(3):
        create(token, last_name=f"Person{'abc'[number]}")
    for page_number in ("999", "9999"):
        response = client.get("/", query_string={"q": "", "zip": "02115", "page": page_number,
                                                  "per_page": "2"})
        assert response.status_code == 200
        page = text(response)
        assert len(cards(page)) == 1 and "Previous page" in page and "Next page" not in page


def test_cards_say_true_things(client, make_clinic, create):
    _, token = make_clinic()
    create(token, last_name="Remote", zip="10001", state="NY", address_line1="1 Broadway",
           in_person=True, telehealth=True, licensed_states=["NY", "MA"], fee_min=40,
           fee_max=220, sliding_scale=True, modalities=["PSYCHODYNAMIC", "MI"])
    create(token, last_name="Near", zip="02115", fee_min=90, fee_max=150, sliding_scale=False)
    found = cards(text(client.get("/?zip=02115")))
    assert "In person" not in found["Remote"].replace("In person (", "")
    assert "Telehealth (licensed in MA)" in found["Remote"]
    assert "Fees $40\u2013$220 per session; sliding scale" in " ".join(found["Remote"].split())
    assert "Psychodynamic therapy; Motivational interviewing (MI)" in found["Remote"]
    assert "PSYCHODYNAMIC" not in found["Remote"]
    assert "In person" in found["Near"]
    # the budget: $40-$220 does not fit $120; $90-$150 fits $150
    assert set(cards(text(client.get("/?zip=02115&max_fee=120")))) == set()
    assert set(cards(text(client.get("/?zip=02115&max_fee=150")))) == {"Near"}


def test_form_messages_in_plain_words_name_the_wrong_values(client):
    response = client.get("/?concern=foo&modality=XYZ&insurance=blah")
    page = html.unescape(text(response))
    assert response.status_code == 422
    for sentence in ("Concern: \u201cfoo\u201d is not one of the choices.",
                     "Approach: \u201cXYZ\u201d is not one of the choices.",
                     "Insurance: \u201cblah\u201d is not one of the choices."):
        assert sentence in page
    assert "Concern: 0" not in page and ": 0<" not in page
    assert 'aria-describedby="concern-error"' in page and 'id="concern-error"' in page


def test_clinic_form_names_the_wrong_state_and_speaks_plainly(app, client, make_clinic, create):
    _, token = make_clinic()
    made = create(token)
    client.post("/clinic/sign-in", data={"token": token,
                                         "csrf_token": csrf(client, "/clinic/sign-in")})
    url = f"/clinic/providers/{made['id']}/edit"
    form = {**opened(client, url), "first_name": "Maya", "last_name": "Okafor",
            "provider_type": "clinical_social_worker", "licensed_states": "ZZ, NY",
            "fee_min": "200", "fee_max": "100", "zip": "02115"}
    page = html.unescape(text(client.post(url, data=form)))
    assert "\u201cZZ\u201d is not one of the choices." in page
    assert ">0<" not in page and ": 0" not in page
    form.update(licensed_states="MA, NY", csrf_token=csrf(client, url))
    page = html.unescape(text(client.post(url, data=form)))
    assert "The lowest fee must not be more than the highest fee." in page
    assert "fee_min" not in re.sub(r'(name|id|for|href|aria-describedby)="[^"]*"', "", page)


def test_match_opens_on_an_empty_form(client):
    response = client.get("/match")
    assert response.status_code == 200
    page = text(response)
    assert 'class="error"' not in page and "Call or text 988" in page


def test_error_pages_carry_the_988_notice(client):
    response = client.get("/providers/999999")
    assert response.status_code == 404 and "Call or text 988" in text(response)


def test_match_form_has_state_approach_prescriber_type_and_fee_per_visit(client):
    page = text(client.get("/match"))
    for control in ('id="state"', 'id="modality"', 'id="prescriber_type"', 'id="max_fee"',
                    'id="max_combined_fee"'):
        assert control in page
    assert client.get("/match?state=MA&telehealth=true").status_code == 200


def test_page_titles_say_what_the_page_shows(client, make_clinic, create):
    _, token = make_clinic()
    create(token, last_name="Titled")
    assert "<title>Find a therapist or prescriber</title>" in text(client.get("/"))
    assert re.search(r"<title>1 provider found for “titled” - ",
                     text(client.get("/?q=titled")))
    assert "<title>Please check the search - " in text(client.get("/?zip=abc"))


def _luminance(hex_color: str) -> float:
    channels = [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_focus_ring_contrast_and_a_skip_link_that_shows_on_focus(client):
    css = text(client.get("/static/site.css"))
    ring = re.search(r":focus[^{]*\{\s*outline: 3px solid (#[0-9a-f]{6})", css)[1]
    for background in ("#ffffff", "#f3f6f9"):
        lighter, darker = sorted((_luminance(ring), _luminance(background)), reverse=True)
        assert (lighter + 0.05) / (darker + 0.05) >= 3
    assert re.search(r"\.skip:focus \{ left: \.5rem; \}", css)
    assert '<a class="skip" href="#content">' in text(client.get("/"))


def test_clinic_edit_links_name_their_listing(app, client, make_clinic, create):
    _, token = make_clinic()
    create(token, first_name="Ann", last_name="One")
    create(token, first_name="Bo", last_name="Two")
    client.post("/clinic/sign-in", data={"token": token,
                                         "csrf_token": csrf(client, "/clinic/sign-in")})
    page = text(client.get("/clinic"))
    names = re.findall(r'>Edit<span class="sr-only"> ([^<]+)</span></a>', page)
    assert sorted(names) == ["Ann One", "Bo Two"]


def test_links_keep_repeated_fields_as_repeated_parameters(client, make_clinic, create):
    """Chips, suggestions and facet links carry approaches and insurance as
    ``modality=CBT&modality=DBT`` (they once carried ``['CBT', 'DBT']``, which no form
    reads), and following one answers the changed search."""
    _, token = make_clinic()
    create(token, last_name="Both", modalities=["CBT", "DBT"], insurance=["aetna"])
    page = text(client.get("/?zip=02115&modality=CBT&modality=DBT&insurance=aetna&language=es"))
    remove = html.unescape(re.search(r'href="([^"]+)" aria-label="Remove Spanish"', page)[1])
    assert "modality=CBT&modality=DBT" in remove and "insurance=aetna" in remove
    assert "%5B" not in page  # no list written into a link
    followed = client.get(remove)
    assert followed.status_code == 200 and set(cards(text(followed))) == {"Both"}
    facet = html.unescape(re.search(
        r'<a href="([^"]+)">Dialectical behavior therapy \(DBT\) \(1\)</a>', page)[1])
    assert facet.endswith("&modality=DBT") and "modality=CBT" not in facet
    assert set(cards(text(client.get(facet)))) == {"Both"}
