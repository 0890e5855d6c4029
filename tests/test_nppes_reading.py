"""Reading the NPPES file fast (``nppes.lines_reader``) classifies every row exactly as the
straightforward reading (``csv`` over the whole file, every taxonomy slot read) does."""

from __future__ import annotations

import csv
import io
import itertools
from collections import Counter

import pytest

from referral import nppes_import
from referral.nppes import (
    HEADER,
    NppesRecord,
    classify,
    lines_reader,
    matters,
    nppes_header,
    read_csv,
)
from referral.taxonomy import (
    EXCLUDED_CODES,
    PRESCRIBER_CODES,
    PRESCRIBING_PSYCHOLOGIST,
    THERAPIST_CODES,
)
from seeds.nppes_file import generate_rows, taxonomy_slots, write_nppes_csv
from tests.fixtures import nppes_fixture
from tests.fixtures.nppes_fixture import npi, person

PRACTICE_COUNTRY = "Provider Business Practice Location Address Country Code (If outside U.S.)"

#: Rows the generator never writes: every way a line can leave the plain form, and the
#: rules around the codes that matter.
EDGE_ROWS = [
    # a quote inside a value (the CMS doubles it): read by csv
    person(101, 'O"BRIEN', "MARY", "LICSW", "1 MAIN ST", "BOSTON", "MA", "02115",
           ("1041C0700X", "MA", "Y")),
    # line breaks inside values (CRLF, a lone LF, a lone CR): one record over several lines
    person(102, "NGUYEN", "LINH", "LMHC", "1 MAIN ST\r\nSUITE 2", "AMHERST", "MA", "01002",
           ("101YM0800X", "MA", "Y"), **{"Provider Credential Text": "LMHC\nLICSW"}),
    person(103, "KIM", "DANIEL", "MD", "3 OAK AVE\rFLOOR 2", "NEW YORK", "NY", "10001",
           ("207X00000X", "NY", "Y")),
    # a break inside a value of a row none of whose codes matters
    person(104, "BONE", "BOB", "MD", "13 X ST\r\n", "BOSTON", "MA", "02115",
           ("207X00000X", "MA", "Y")),
    # commas, and the separator's own characters around quotes, inside values
    person(105, "SMITH, JR", "JOHN", "PHD, ABPP", '","', "BOSTON", "MA", "02115",
           ("103T00000X", "MA", "Y")),
    person(106, ",", '"', "MD", "1 X ST", "BOSTON", "MA", "02115", ("207X00000X", "MA", "Y")),
    person(131, "SMITH, JR", ",", "MD,", ", 1 X ST,", "BOSTON", "MA", "02115",
           ("207X00000X", "MA", "Y")),
    # deactivated, with and without codes; reactivated
    {"NPI": npi(107), "NPI Deactivation Date": "05/01/2020"},
    person(108, "GONE", "AWAY", "LPC", "1 X ST", "BOSTON", "MA", "02115",
           ("101YM0800X", "MA", "Y"), **{"NPI Deactivation Date": "05/01/2020"}),
    person(109, "BACK", "AGAIN", "MD", "1 X ST", "BOSTON", "MA", "02115",
           ("207X00000X", "MA", "Y"), **{"NPI Deactivation Date": "01/01/2019",
                                         "NPI Reactivation Date": "02/01/2020"}),
    # foreign addresses, with a code that matters and without
    person(110, "TREMBLAY", "LUC", "PHD", "1 RUE", "TORONTO", "ON", "M5V2T6",
           ("103T00000X", "", "Y"), **{PRACTICE_COUNTRY: "CA"}),
    person(111, "DUPONT", "JEAN", "MD", "1 RUE", "PARIS", "", "75001",
           ("207X00000X", "", "Y"), **{PRACTICE_COUNTRY: " fr "}),
    # organizations: behavioral by organization code, by an individual code (a group
    # practice), not behavioral, excluded codes only, foreign
    {"NPI": npi(112), "Entity Type Code": "2",
     "Provider Organization Name (Legal Business Name)": "HARBOR CLINIC",
     **taxonomy_slots(("282N00000X", "", "N"), ("261QM0801X", "", "Y"))},
    {"NPI": npi(113), "Entity Type Code": "2",
     "Provider Organization Name (Legal Business Name)": "PSYCHOLOGY GROUP",
     **taxonomy_slots(("103T00000X", "MA", "Y"))},
    {"NPI": npi(114), "Entity Type Code": "2",
     "Provider Organization Name (Legal Business Name)": "GENERAL HOSPITAL",
     **taxonomy_slots(("282N00000X", "", "Y"))},
    {"NPI": npi(115), "Entity Type Code": "2",
     "Provider Organization Name (Legal Business Name)": "SCHOOL DISTRICT",
     **taxonomy_slots(("101YS0200X", "", "Y"), ("1041S0200X", "", "N"))},
    {"NPI": npi(116), "Entity Type Code": "2",
     "Provider Organization Name (Legal Business Name)": "CLINIQUE",
     PRACTICE_COUNTRY: "CA", **taxonomy_slots(("261QM0801X", "", "Y"))},
    # excluded codes alone, and with an unrelated code or a role
    person(117, "SMITH", "JANE", "RN", "4 PINE ST", "BOSTON", "MA", "02115",
           ("163WP0808X", "MA", "Y"), ("207X00000X", "MA", "N")),
    person(118, "REED", "AMY", "RN, LMHC", "14 Y ST", "BOSTON", "MA", "02115",
           ("106S00000X", "MA", "Y"), ("101YM0800X", "MA", "N")),
    # a prescribing psychologist in an RxP state, out of one, and licensed in one only in
    # another slot (the licensed states are all the slots')
    person(119, "BACA", "LUIS", "PHD", "10 PLAZA", "SANTA FE", "NM", "87501",
           ("103TP0016X", "NM", "Y")),
    person(120, "COHEN", "SARAH", "PHD", "11 PARK AVE", "NEW YORK", "NY", "10016",
           ("103TP0016X", "NY", "Y")),
    person(121, "ROSS", "ANN", "PHD", "11 PARK AVE", "NEW YORK", "NY", "10016",
           ("103TP0016X", "NY", "Y"), ("207X00000X", "IL", "N")),
    # codes in lower case and with spaces, codes known only by their prefix (363L, 103T)
    person(122, "LOWER", "CASE", "MD", "1 X ST", "BOSTON", "MA", "02115",
           (" 2084p0800x ", " ma ", "y"), ("207x00000x", "MA", "N")),
    person(123, "FAMILY", "NP", "NP", "1 X ST", "BOSTON", "MA", "02115",
           ("207X00000X", "MA", "Y"), ("363LF0000X", "MA", "N")),
    person(124, "CLINICAL", "PSY", "PHD", "1 X ST", "BOSTON", "MA", "02115",
           ("103TC0700X", "MA", "N"), ("207X00000X", "NH", "Y")),
    # all fifteen slots, the role's code last; no code at all; no entity type; unknown type
    person(125, "MANY", "CODES", "MD", "1 X ST", "BOSTON", "MA", "02115",
           *[("207X00000X", state, "N") for state in ("MA", "NH", "VT", "ME", "RI", "CT",
                                                      "NY", "NJ", "PA", "DE", "MD", "VA",
                                                      "NC", "SC")], ("2084P0800X", "GA", "N")),
    person(126, "NO", "CODE", "MD", "1 X ST", "BOSTON", "MA", "02115"),
    {**person(127, "NO", "TYPE", "LPC", "1 X ST", "BOSTON", "MA", "02115",
              ("101YM0800X", "MA", "Y")), "Entity Type Code": ""},
    {**person(128, "ODD", "TYPE", "LPC", "1 X ST", "BOSTON", "MA", "02115",
              ("207X00000X", "MA", "Y")), "Entity Type Code": "3"},
    # a bad check digit; a practice in another state (the --state filter)
    {**person(129, "BAD", "NUMBER", "LPC", "1 X ST", "BOSTON", "MA", "02115",
              ("101YM0800X", "MA", "Y")), "NPI": "1234567890"},
    person(130, "FAR", "AWAY", "LPC", "1 X ST", "AUSTIN", "TX", "78701",
           ("101YM0800X", "TX", "Y")),
]

#: Lines no CSV writer of the CMS format makes: short, long, unquoted, blank, malformed.
ODD_LINES = [
    f'"{npi(140)}","1"\r\n',
    "\r\n",
    ",".join([f'"{npi(141)}"', '"1"'] + ['""'] * 330) + "\r\n",
    ",".join([npi(142), "1"] + [""] * 328) + "\r\n",
    f'"{npi(143)}","1",x"y' + ',""' * 327 + "\r\n",
    f'"{npi(146)}","1"' + ',""' * 328 + "\r",  # a lone CR ends a line too
    f'"{npi(144)}","1"' + ',""' * 327 + ',"' + "\r\n",  # one quote short: ends the file
]


def _balanced_line() -> str:
    """A line with twice as many quotes as columns that is not plain: an empty value
    unquoted and a quote inside another (splitting it on ``","`` would be wrong)."""
    row = person(145, 'O"BRIEN', "MARY", "LICSW", "1 MAIN ST", "BOSTON", "MA", "02115",
                 ("1041C0700X", "MA", "Y"))
    out = io.StringIO(newline="")
    write_nppes_csv(out, [row])
    line = out.getvalue().split("\r\n")[1].replace(',"",', ",,", 1) + "\r\n"
    assert line.count('"') == 2 * len(HEADER)
    return line


ODD_LINES.insert(-1, _balanced_line())  # before the line that ends the file


def _file(rows: list[dict], header: list[str] | None = None, odd: bool = False) -> str:
    out = io.StringIO(newline="")
    write_nppes_csv(out, rows, header)
    return out.getvalue() + ("".join(ODD_LINES) if odd else "")


def _straightforward(text: str, states=None) -> list:
    return [classify(record, states) for record in read_csv(io.StringIO(text, newline=""))]


def _fast(text: str, states=None) -> list:
    lines = io.StringIO(text, newline="").readlines()
    header = next(csv.reader(lines[:1]))
    return [classify(record, states) for record in lines_reader(header)(lines[1:])]


def _chunked(path, states=None, shares: int = 1) -> tuple[list, Counter]:
    """What the reading processes hand the writer: the rows to write, the counts."""
    rows, counts = [], Counter()
    parts = [nppes_import._classified_chunks(str(path), share, shares, states, None)
             for share in range(shares)]
    for index in itertools.count():
        message = next(parts[index % shares], None)
        if message is None:
            break
        rows += message[0]
        counts.update(message[1])
    return rows, counts


def _expected_chunks(classified: list) -> tuple[list, Counter]:
    counts = Counter(rows=len(classified))
    counts.update(f"skipped: {item.reason}" for item in classified if item.kind == "skip")
    return [(item.kind, item.npi, item.values) for item in classified
            if item.kind != "skip"], counts


def _sex_last_header() -> list[str]:
    header = [name for name in HEADER if name != "Provider Sex Code"]
    return header + ["Provider Sex Code"]


@pytest.mark.parametrize("states", [None, {"MA", "NM"}])
def test_every_row_classifies_as_the_straightforward_reading_does(states, tmp_path,
                                                                      monkeypatch):
    rows = list(generate_rows(20000, seed=11)) + nppes_fixture.ROWS + EDGE_ROWS
    text = _file(rows, odd=True)
    expected = _straightforward(text, states)
    assert len(expected) == len(rows) + len(ODD_LINES) - 1  # the blank line is no record
    assert _fast(text, states) == expected
    path = tmp_path / "npidata_pfile.csv"
    path.write_bytes(text.encode())
    monkeypatch.setattr(nppes_import, "CHUNK", 7)  # records whole across chunks
    assert _chunked(path, states) == _chunked(path, states, shares=2) == _expected_chunks(
        expected)
    kinds = {item.kind for item in expected}
    reasons = {item.reason for item in expected}
    assert kinds == {"therapist", "prescriber", "clinic", "deactivated", "skip"}
    assert {"invalid_npi", "no_entity_type", "unknown_entity_type", "foreign_address",
            "organization_not_behavioral", "excluded_taxonomy", "not_behavioral"} <= reasons
    assert ("other_state" in reasons) == (states is not None)


@pytest.mark.parametrize("header", [nppes_header("Provider Gender Code"), _sex_last_header()],
                         ids=["gender column", "sex code last"])
def test_other_headers_classify_as_the_straightforward_reading_does(header):
    rows = list(generate_rows(3000, seed=5)) + nppes_fixture.ROWS + EDGE_ROWS
    text = _file(rows, header)
    expected = _straightforward(text)
    assert _fast(text) == expected
    assert {item.values.get("sex") for item in expected} == {"female", "male", None}


def test_plain_lines_are_split_and_rows_whose_codes_do_not_matter_read_without_slots():
    """The fast paths are taken (else the tests above prove nothing about them), and only
    where they are exact."""
    lines = io.StringIO(_file(EDGE_ROWS), newline="").readlines()
    records = {record.npi: record for record in lines_reader(HEADER)(lines[1:])}
    # plain lines, commas inside values, no code that matters (207X00000X): split, no slots
    assert records[npi(109)].taxonomies == []
    plain = records[npi(131)]
    assert (plain.last_name, plain.first_name, plain.credentials, plain.address_line1,
            plain.taxonomies) == ("SMITH, JR", ",", "MD,", ", 1 X ST,", [])
    # a line break or a quote inside a value: csv, every slot read
    assert records[npi(104)].taxonomies == [("207X00000X", "MA", "Y")]
    assert records[npi(106)].last_name == "," and records[npi(106)].first_name == '"'
    assert records[npi(102)].address_line1 == "1 MAIN ST\r\nSUITE 2"
    assert records[npi(122)].taxonomies == [("2084P0800X", " ma ", "y"),
                                            ("207X00000X", "MA", "N")]
    assert len(records[npi(125)].taxonomies) == 15
    assert records[npi(117)].taxonomies != []  # an excluded code matters


def test_what_matters():
    for code in [*THERAPIST_CODES, *PRESCRIBER_CODES, *EXCLUDED_CODES,
                 PRESCRIBING_PSYCHOLOGIST, "363LF0000X", "103TC0700X", "261QM0801X"]:
        assert matters(code), code
    for code in ("207X00000X", "282N00000X", "", "2084P0800", "163W00000X"):
        assert not matters(code), code


@pytest.mark.parametrize("entity", ["1", "2"])
def test_codes_that_do_not_matter_change_no_classification(entity):
    """``matters``'s promise, on records with several codes that do not matter (in and out
    of RxP states, as primary or not): classified as the same record without them."""
    for codes in (["207X00000X"], ["282N00000X", "332B00000X"], ["163W00000X", "1223G0001X"]):
        for state in ("MA", "NM", ""):
            slots = [(code, state, "Y" if n == 0 else "N") for n, code in enumerate(codes)]
            record = NppesRecord(npi=npi(150), entity_type=entity, organization_name="ORG",
                                 last_name="A", first_name="B", state="MA",
                                 postal_code="02115", taxonomies=slots)
            bare = NppesRecord(**{**record.__dict__, "taxonomies": []})
            assert not any(matters(code) for code in codes)
            assert classify(record) == classify(bare)
            assert classify(record, {"NM"}) == classify(bare, {"NM"})


def test_bytes_are_decoded_as_a_text_file_reads_them(tmp_path):
    """A byte-order mark, bytes that are not UTF-8 and letters beyond ASCII: the reading
    processes decode only their own chunks, line by line, as the whole file was read."""
    rows = list(generate_rows(200, seed=2)) + EDGE_ROWS + [
        person(160, "MÜLLER-ŁUKASZ", "ANNA", "LMHC", "1 BAD ST", "BOSTON", "MA", "02115",
               ("101YM0800X", "MA", "Y")),
        person(161, "SZABÓ", "ÉVA", "LMHC", "1 MAIN ST", "BOSTON", "MA", "02115",
               ("101YM0800X", "MA", "Y"))]
    text = _file(rows, odd=True).encode()
    path = tmp_path / "npidata_pfile.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.replace(b"1 BAD ST", b"1 BAD \xff\xc3ST"))
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
        expected = [classify(record) for record in read_csv(handle)]
    found = {item.npi: item.values for item in expected}
    assert found[npi(160)]["address_line1"] == "1 BAD \ufffd\ufffdST"
    assert (found[npi(161)]["last_name"], found[npi(161)]["first_name"]) == ("SZABÓ", "ÉVA")
    assert _chunked(path) == _chunked(path, shares=3) == _expected_chunks(expected)


@pytest.mark.parametrize("data", [
    b'"a","b"\r\n"c","d"\r\n', b'"a","b"\n"c","d"', b'"a","b"\r"c","d"\r\n',
    b'"a","b\rc"\r\n', b'"a","b"\r\n"c","d\r', b'"a","b"\r\n"c","d\re', b'x\r\r\n',
    b'"a\xff","\xc3b"\r\n\r\n', b"\r", b"\n", b"\r\n"])
def test_a_chunk_is_decoded_into_the_lines_a_text_file_gives(data):
    lines = io.BytesIO(data).readlines()  # split at LF, as the reading processes split
    text = data.decode("utf-8", "replace")
    assert nppes_import._decoded(lines) == io.StringIO(text, newline="").readlines()


@pytest.mark.parametrize("ending", ["\r", "mixed"])
def test_lines_ending_in_a_lone_cr_are_all_read(ending, tmp_path):
    """A file whose lines end in a lone CR (or whose header alone does) is read as a text
    file reads it: the header's line, split at LF, holds records after the header."""
    rows = list(generate_rows(300, seed=3)) + nppes_fixture.ROWS + EDGE_ROWS
    text = _file(rows)
    if ending == "\r":
        text = text.replace("\r\n", "\r")
    else:
        head, _, body = text.partition("\r\n")
        text = head + "\r" + body
    expected = _straightforward(text)
    assert len(expected) == len(rows)
    path = tmp_path / "npidata_pfile.csv"
    path.write_bytes(text.encode())
    assert _chunked(path) == _chunked(path, shares=2) == _expected_chunks(expected)
