"""The patient pages in Spanish (issue 15): ``Accept-Language`` and the language switch
(``?lang=``, remembered in a cookie, keeping the query), ``<html lang>``, the crisis panel
and the 988 notice, reasons, suggestions, fees and form messages, error pages; the API
and the clinic pages stay English."""

from __future__ import annotations

import html
import re

from tests.conftest import make_app
from tests.web.test_pages import csrf, text
from tests.web.test_patient_pages import cards

ES = {"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"}
CRISIS_ES = ("Si está en peligro inmediato, llame al 911. Para apoyo en una crisis, llame o "
             "envíe un mensaje de texto al 988 (Línea de Prevención del Suicidio y Crisis); "
             "presione 2 para español.")


def words(response) -> str:
    """The page's text with entities decoded and whitespace collapsed."""
    return " ".join(html.unescape(text(response)).split())


def test_accept_language_spanish_search_page(client):
    response = client.get("/", headers=ES)
    page = words(response)
    assert response.status_code == 200
    assert '<html lang="es">' in page
    assert "<h1>Busque un terapeuta o un prescriptor</h1>" in page
    assert '<label for="zip">Código postal</label>' in page
    assert CRISIS_ES in page  # the footer's 988 notice, in Spanish
    assert "Find a therapist" not in page and "Call or text 988" not in page
    assert "Terapia cognitivo-conductual" in page  # the approaches' notes
    assert '<option value="depression" >Depresión</option>' in page  # vocabulary labels
    assert '<option value="es" >Español</option>' in page
    # the switch back to English, in English
    assert re.search(r'<a class="lang" href="/\?lang=en" lang="en" hreflang="en">English</a>',
                     page)


def test_english_stays_the_default(client):
    for headers in ({}, {"Accept-Language": "fr-FR,de;q=0.8"}):
        page = words(client.get("/", headers=headers))
        assert '<html lang="en">' in page and "<h1>Find a therapist or prescriber</h1>" in page
        assert ">Español</a>" in page


def test_results_reasons_fees_and_chips_in_spanish(client, make_clinic, create):
    _, token = make_clinic()
    create(token, last_name="Rivera", languages=["en", "es"], modalities=["EMDR"],
           concerns=["trauma"], fee_min=40, fee_max=1200, sliding_scale=True,
           licensed_states=["MA"])
    response = client.get("/", query_string={"q": "spanish speaking EMDR therapist for trauma",
                                             "zip": "02115"}, headers=ES)
    page = words(response)
    assert response.status_code == 200
    assert "Se encontró 1 profesional" in page
    assert 'aria-label="Quitar Español"' in page  # the chip
    card = " ".join(cards(text(response))["Rivera"].split())
    assert "Tarifas de $40–$1,200 por sesión; escala móvil" in card  # es_US money
    assert "Habla español" in card
    assert "Ofrece Desensibilización y reprocesamiento por movimientos oculares (EMDR)" in card
    assert "Acepta pacientes nuevos" in card and "Verificado hace 0 días" in card
    assert re.search(r"En persona, a \d+\.\d millas", card)


def test_relaxations_and_messages_in_spanish(client, make_clinic, create):
    _, token = make_clinic()
    create(token, last_name="Full", accepting_new_patients=False)
    page = words(client.get("/?zip=02115", headers=ES))
    assert "Se encontraron 0 profesionales" in page
    assert "Nada coincide con todo lo que pidió. Con estos cambios encontraría profesionales:" \
        in page
    assert ">Incluir profesionales que no aceptan pacientes nuevos</a> (1 profesional)" in page
    response = client.get("/?concern=foo&zip=1&max_fee=abc", headers=ES)
    page = words(response)
    assert response.status_code == 422
    assert "<title>Revise la búsqueda - " in page
    assert "Problema o necesidad: “foo” no es una de las opciones." in page
    assert "Código postal: Un código postal tiene 5 dígitos (también se acepta ZIP+4)." in page
    assert "Lo máximo que puede pagar por sesión: No es un número entero válido." in page


def test_crisis_panel_in_spanish(client):
    page = words(client.get("/?q=quiero+morir", headers=ES))
    panel = page.split('class="crisis"')[1].split("</section>")[0]
    assert "No tiene que pasar por esto a solas." in panel and CRISIS_ES in panel
    assert '<a href="tel:988">Llame al 988</a>' in panel
    assert '<a href="sms:988">Envíe un mensaje de texto al 988</a>' in panel
    assert page.index('class="crisis"') < page.index("<h1>")


def test_the_switch_keeps_the_query_and_is_remembered(client, make_clinic, create):
    _, token = make_clinic()
    create(token, last_name="Okafor")
    english = text(client.get("/?q=anxiety&zip=02115"))
    link = html.unescape(re.search(r'<a class="lang" href="([^"]+)"', english)[1])
    assert link == "/?q=anxiety&zip=02115&lang=es"
    switched = client.get(link)
    assert {"Accept-Language", "Cookie"} <= set(switched.vary)
    assert "lang=es" in switched.headers["Set-Cookie"] and "HttpOnly" in \
        switched.headers["Set-Cookie"]
    assert set(cards(text(switched))) == {"Okafor"} and "Se encontró 1 profesional" in \
        words(switched)
    # the cookie carries the choice to the next page, and the switch back keeps the query
    later = words(client.get("/match"))
    assert '<html lang="es">' in later and "Busque un terapeuta y un prescriptor" in later
    back = html.unescape(re.search(r'<a class="lang" href="([^"]+)"', text(switched))[1])
    assert back == "/?q=anxiety&zip=02115&lang=en"
    assert '<html lang="en">' in words(client.get(back))
    assert '<html lang="en">' in words(client.get("/"))  # remembered again, now English


def test_provider_page_and_pairs_in_spanish(client, make_clinic, create):
    _, token = make_clinic()
    therapist = create(token, last_name="Okafor", wait_days=1, age_groups=["older_adult"])
    create(token, last_name="Shah", provider_type="psychiatrist", taxonomy_codes=["2084P0800X"],
           credentials="MD", modalities=[], age_groups=["older_adult"])
    page = words(client.get(f"/providers/{therapist['id']}", headers=ES))
    assert '<html lang="es">' in page
    assert "Trabajador social clínico (terapeuta) en Harbor Counseling" in page
    assert "<dt>Edades</dt><dd>Adulto mayor</dd>" in page
    assert "Espera habitual para una primera cita: 1 día." in page
    assert "Tarifas de $90–$150 por sesión; escala móvil." in page
    assert "Recetadores" not in page and "Prescriptores que coordinan" in page
    assert "El prescriptor puede atender al paciente en persona" in page
    pairs = words(client.get("/match?zip=02115&age_group=older_adult", headers=ES))
    assert "Por qué esta pareja" in pairs and "Ambos coordinan la atención" in pairs
    assert "El terapeuta le atiende en persona, a" in pairs


def test_freshness_and_the_report_form_in_spanish(app, client, make_clinic, create):
    """The provider page's freshness, reported notice and report form (with its error)
    in Spanish, from the one wording of ``referral.wording`` and the form's partial."""
    import datetime as dt

    from referral.extensions import db
    from referral.models import Provider

    _, token = make_clinic()
    listing = create(token, last_name="Okafor")
    with app.app_context():
        provider = db.session.get(Provider, listing["id"])
        provider.reported_at = dt.datetime.now(dt.UTC)
        provider.last_verified_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=120)
        db.session.commit()
    page = words(client.get(f"/providers/{listing['id']}", headers=ES))
    assert "Sin verificar desde hace 120 días" in page
    assert "Algunos pacientes informaron que esta ficha podría estar desactualizada." in page
    assert "Informar un problema con esta ficha" in page and "¿Qué está mal?" in page
    assert "No pude comunicarme (el teléfono o el correo no funcionó)" in page
    url = f"/providers/{listing['id']}"
    refused = client.post(f"{url}/report", headers=ES,
                          data={"csrf_token": csrf(client, url), "text": "no funciona"})
    assert refused.status_code == 422
    assert "Qué está mal: Elija qué está mal en la ficha." in words(refused)


def test_error_pages_in_spanish(client):
    missing = client.get("/providers/999999", headers=ES)
    assert missing.status_code == 404
    page = words(missing)
    assert "<h1>404 No encontrado</h1>" in page and CRISIS_ES in page
    assert "Volver a la búsqueda" in page
    nowhere = words(client.get("/no-such-page", headers=ES))
    assert "No hay ninguna página en esta dirección." in nowhere


def test_api_and_clinic_pages_stay_english(client, make_clinic, create):
    _, token = make_clinic()
    create(token, last_name="Okafor")
    answer = client.get("/api/v1/providers/search?language=es&zip=02115", headers=ES).json
    assert "Speaks Spanish" in answer["items"][0]["reasons"]
    assert answer["interpreted"]["chips"][0]["label"] == "Spanish"
    wrong = client.get("/api/v1/providers/search?zip=1", headers=ES).json
    assert wrong["errors"]["query"]["zip"] == ["A ZIP code is 5 digits (ZIP+4 is accepted)."]
    clinic = words(client.get("/clinic/sign-in", headers=ES))
    assert '<html lang="en">' in clinic and "Español" not in clinic
    assert "Call or text 988" in clinic
    assert "lang" not in client.get("/clinic/sign-in?lang=es").headers.get("Set-Cookie", "")


def test_the_429_page_in_spanish_keeps_the_988_notice(app, database):
    limited = make_app(database, RATE_LIMITS=True, RATELIMIT_SEARCH="2 per minute")
    client = limited.test_client()
    here = {"REMOTE_ADDR": "127.0.0.91"}
    statuses = [client.get("/?zip=10001", headers=ES, environ_base=here).status_code
                for _ in range(3)]
    assert statuses == [200, 200, 429]
    page = words(client.get("/?zip=10001", headers=ES, environ_base=here))
    assert "<h1>429 Demasiadas solicitudes</h1>" in page
    assert "Demasiadas solicitudes (el límite es 2 por minuto)." in page
    assert "Espere un minuto y vuelva a intentarlo." in page and CRISIS_ES in page


def test_pages_translate_through_flasks_public_proxy_too(client, monkeypatch):
    """A Flask without the request-context variable ``referral.i18n`` reads (Flask 3.2
    merges the request into the app context): the request proxy serves the same pages."""
    from referral import i18n

    monkeypatch.setattr(i18n, "_cv_request", None)
    spanish, english = words(client.get("/", headers=ES)), words(client.get("/"))
    assert "<h1>Busque un terapeuta o un prescriptor</h1>" in spanish and CRISIS_ES in spanish
    assert "<h1>Find a therapist or prescriber</h1>" in english
