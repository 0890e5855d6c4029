"""The patient pages' language: English or Spanish (Flask-Babel); localised money and dates.

Patient pages (search, a provider's page, pairs, their error pages) speak the locale the
patient chose with the language switch (the ``lang`` query parameter, remembered in the
``lang`` cookie), else the best of their browser's ``Accept-Language``, else English.
Spanish is ``es_US``: Spanish words, US money (``$40``). The JSON API, the FHIR API and the
clinic and operator pages are staff and machine tools and always answer in English, so
API answers (reasons, labels, messages) never depend on a browser's settings.

Strings are marked with ``gettext``/``ngettext`` where they are made (a request's locale
applies) and with ``N_`` where a module declares them once at import (vocabulary labels),
translated where they are shown. The catalog: ``referral/translations/es/LC_MESSAGES``
(``make translations`` re-extracts, updates and compiles it).
"""

from __future__ import annotations

import datetime as dt
import functools
from urllib.parse import urlencode

from babel import support
from babel.numbers import format_currency
from flask import Flask, has_request_context, request
from flask_babel import Babel, format_date, format_decimal, get_locale, get_translations

try:  # Flask 3.1's request-context variable; Flask 3.2 merges the request into the app context
    from flask.globals import _cv_request
except ImportError:  # pragma: no cover - exercised by the i18n tests with it set to None
    _cv_request = None

#: The choices of the language switch: ``lang`` value -> (Babel locale, its own name).
LOCALES = {"en": ("en_US", "English"), "es": ("es_US", "Español")}
DEFAULT_LANG = "en"
LANG_COOKIE = "lang"
#: Path prefixes of pages and APIs that always answer in English (staff tools, machines).
_ENGLISH_ONLY = ("/api/", "/fhir", "/clinic", "/operator")

babel = Babel()


def N_(text: str) -> str:  # the name gettext tools look for (babel's default keywords)
    """Mark a string declared at import time for translation; it is translated where shown."""
    return text


def _request_environ() -> dict | None:
    """The current request's WSGI environ (None outside a request), read from Flask's
    context variable itself: ``request.environ`` goes through a context-local proxy, about
    a microsecond a time, and a search answer asks for its catalog a hundred times."""
    if _cv_request is None:  # a Flask without the variable: its public proxy
        return request.environ if has_request_context() else None
    context = _cv_request.get(None)
    return context.request.environ if context is not None else None


def translations() -> support.NullTranslations:
    """This request's catalog, looked up once per request (a page asks for hundreds of
    strings; Flask-Babel's own lookup walks the app and request contexts each time).
    Outside a request: none, so English."""
    environ = _request_environ()
    if environ is None:
        return _ENGLISH
    found = environ.get(_CATALOG_KEY)
    if found is None:
        found = environ[_CATALOG_KEY] = get_translations()
    return found


def _locale_name() -> str:
    """This request's Babel locale as a string (``en_US``), looked up once per request;
    ``en_US`` outside a request."""
    environ = _request_environ()
    if environ is None:
        return "en_US"
    found = environ.get(_LOCALE_KEY)
    if found is None:
        found = environ[_LOCALE_KEY] = str(get_locale() or "en_US")
    return found


_ENGLISH = support.NullTranslations()
_CATALOG_KEY = "referral.translations"
_LOCALE_KEY = "referral.locale"


def gettext(text: str, **variables) -> str:
    """``text`` in the request's language, ``%(name)s`` placeholders filled from
    ``variables`` (Flask-Babel's ``gettext``, with the catalog looked up once)."""
    translated = translations().ugettext(text)
    return translated % variables if variables else translated


def ngettext(singular: str, plural: str, num: int, **variables) -> str:
    """The singular or plural of a message in the request's language (``%(num)s`` is
    ``num``)."""
    return translations().ungettext(singular, plural, num) % {"num": num, **variables}


def patient_page() -> bool:
    """Whether the current request is for a page a patient can see (it may be in Spanish)."""
    return has_request_context() and not request.path.startswith(_ENGLISH_ONLY)


def chosen_lang() -> str:
    """The ``lang`` of this request: switch (query, then cookie), browser, default."""
    if not patient_page():
        return DEFAULT_LANG
    for asked in (request.args.get("lang"), request.cookies.get(LANG_COOKIE)):
        if asked in LOCALES:
            return asked
    return request.accept_languages.best_match(LOCALES, default=DEFAULT_LANG)


def select_locale() -> str:
    """Flask-Babel's locale selector: the Babel locale of ``chosen_lang``."""
    return LOCALES[chosen_lang()][0]


def money(amount: int) -> str:
    """Whole dollars in the request's locale: ``$1,200`` (English and US Spanish alike)."""
    return _money(amount, _locale_name())


@functools.lru_cache(maxsize=8192)
def _money(amount: int, locale: str) -> str:
    # Babel's formatting costs a quarter of a millisecond; cards repeat the same few fees.
    return format_currency(amount, "USD", format="\u00a4#,##0", locale=locale,
                           currency_digits=False)


def miles(distance: float) -> str:
    """A distance with one decimal in the request's locale (``1,013.2``)."""
    return format_decimal(distance, format="#,##0.0")


def local_date(value: str | None) -> str:
    """An ISO timestamp's date in the request's locale (``Dec 1, 2026`` / ``1 dic 2026``)."""
    return format_date(dt.datetime.fromisoformat(value), format="medium") if value else ""


def language_switch() -> dict | None:
    """The switch to the other language (``{"href", "label", "lang"}``), keeping the query;
    None on English-only pages."""
    if not patient_page():
        return None
    other = "en" if chosen_lang() == "es" else "es"
    args = [(key, value) for key, value in request.args.items(multi=True) if key != "lang"]
    return {"href": request.path + "?" + urlencode(args + [("lang", other)]),
            "label": LOCALES[other][1], "lang": other}


def html_lang() -> str:
    """The page's ``<html lang>``: ``en`` or ``es``."""
    return chosen_lang()


def remember_choice(response):
    """After a switch (``?lang=``), remember the choice in a cookie for a year; a patient
    page says it varies with the browser's language and the cookie (caches keep both)."""
    if not patient_page():
        return response
    response.vary.update(("Accept-Language", "Cookie"))
    asked = request.args.get("lang")
    if asked in LOCALES and request.cookies.get(LANG_COOKIE) != asked:
        response.set_cookie(LANG_COOKIE, asked, max_age=365 * 24 * 3600, samesite="Lax",
                            secure=request.is_secure, httponly=True)
    return response


def init_app(app: Flask) -> None:
    """Bind Flask-Babel with the locale selector, the cookie and the template helpers."""
    babel.init_app(app, locale_selector=select_locale, default_locale="en_US")
    app.jinja_env.install_gettext_callables(  # the templates' _() and ngettext(), as above
        lambda text: translations().ugettext(text),
        lambda singular, plural, num: translations().ungettext(singular, plural, num),
        newstyle=True)
    app.after_request(remember_choice)
    app.jinja_env.globals["language_switch"] = language_switch
    app.jinja_env.globals["html_lang"] = html_lang
    app.jinja_env.filters["miles"] = miles
    app.jinja_env.filters["local_date"] = local_date
