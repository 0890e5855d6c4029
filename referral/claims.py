"""Claiming registry records: a clinic searches the unclaimed listings and organizations
that the NPPES import created, claims one or many with an attestation, and an operator
approves or rejects each claim with a reason.

Rules, each declared here once:

- only an approved clinic claims; the attestation must be given;
- an NPI that is not an unclaimed registry record is refused: unknown (404), yours or
  another clinic's already (409), already waiting for your claim (409);
- several clinics may claim one NPI; the first approved wins and the other pending claims
  are rejected with the reason ("another clinic's claim was approved first");
- an approved listing claim moves the listing to the clinic, unverified: patients see it
  only after the clinic completes and verifies it (search hides unverified listings);
- an approved organization claim makes the clinic that organization (its organization
  NPI) and moves the organization's listings to it;
- a clinic can release a listing: it goes back to the registry, unclaimed and unverified.

No automatic approval: NPPES names a parent organization only for organization subparts,
by legal name and tax id, never by NPI, and an individual's record names no organization
at all; so no record can show that a provider practices at the claiming clinic, and every
claim waits for an operator.
"""

from __future__ import annotations

from sqlalchemy import or_, select

from .accounts import log_activity, require_approved
from .actors import current_actor
from .errors import Conflict, DomainError, Invalid, NotFound
from .extensions import db
from .limits import MAX_CLAIMS_PER_REQUEST, MAX_EVIDENCE_LENGTH
from .listings import clinic_provider, commit_or_conflict, record_audit
from .models import Claim, Clinic, Provider, User, utcnow
from .npi import is_valid_npi

#: What a clinic attests when it claims a listing, and an organization.
LISTING_ATTESTATION = "This provider practices at our clinic."
ORGANIZATION_ATTESTATION = "Our clinic is this organization."
FIRST_WINS = "Another clinic's claim of this NPI was approved first."
#: Most records one registry search answers.
SEARCH_LIMIT = 50


def unclaimed_records(*, npi: str | None = None, name: str | None = None,
                      state: str | None = None) -> list[dict]:
    """Unclaimed registry listings and organizations by NPI, or by name (every word must
    appear in the first or last name, or the organization's name) and optional state."""
    if not npi and not name:
        raise Invalid("Search by NPI, or by name (and state).",
                      {"query": ["Give npi or name."]})
    listing_query = select(Provider).where(Provider.clinic_id.is_(None),
                                           Provider.active.is_(True))
    org_query = select(Clinic).where(Clinic.status == "unclaimed")
    if npi:
        listing_query = listing_query.where(Provider.npi == npi)
        org_query = org_query.where(Clinic.organization_npi == npi)
    for word in (name or "").split():
        pattern = f"%{word.replace('%', '').replace('_', '')}%"
        listing_query = listing_query.where(or_(Provider.first_name.ilike(pattern),
                                                Provider.last_name.ilike(pattern)))
        org_query = org_query.where(Clinic.name.ilike(pattern))
    if state:
        listing_query = listing_query.where(Provider.state == state)
    found = [{"kind": "listing", "npi": p.npi, "provider_id": p.id,
              "name": f"{p.first_name} {p.last_name}", "credentials": p.credentials,
              "provider_type": p.provider_type, "city": p.city, "state": p.state}
             for p in db.session.scalars(listing_query.order_by(Provider.last_name, Provider.id)
                                         .limit(SEARCH_LIMIT))]
    if not state:
        found += [{"kind": "organization", "npi": c.organization_npi, "clinic_id": c.id,
                   "name": c.name, "credentials": None, "provider_type": None, "city": None,
                   "state": None}
                  for c in db.session.scalars(org_query.order_by(Clinic.name, Clinic.id)
                                              .limit(SEARCH_LIMIT))]
    return found[:SEARCH_LIMIT]


def _problem_for(clinic: Clinic, npi: str) -> tuple[type[DomainError], str] | Claim:
    """A new claim of ``npi`` by ``clinic``, or why not (the error class and a message)."""
    if not is_valid_npi(npi):
        return Invalid, "Not a valid NPI (10 digits, check digit)."
    waiting = db.session.scalar(select(Claim).where(Claim.clinic_id == clinic.id,
                                                    Claim.npi == npi,
                                                    Claim.status == "pending"))
    if waiting is not None:
        return Conflict, f"Your claim {waiting.id} of this NPI is already waiting for approval."
    provider = db.session.scalar(select(Provider).where(Provider.npi == npi))
    if provider is not None:
        if provider.clinic_id == clinic.id:
            return Conflict, f"This NPI is already your listing {provider.id}."
        if provider.clinic_id is not None:
            return Conflict, "This NPI is already claimed by another clinic."
        return Claim(clinic_id=clinic.id, kind="listing", npi=npi, provider_id=provider.id,
                     attestation=LISTING_ATTESTATION)
    organization = db.session.scalar(select(Clinic).where(Clinic.organization_npi == npi))
    if organization is None:
        return NotFound, "This NPI is not in the directory's registry (NPPES import)."
    if organization.id == clinic.id:
        return Conflict, "This is your clinic's own organization NPI."
    if organization.status != "unclaimed":
        return Conflict, "This organization is already claimed by another clinic."
    if clinic.organization_npi:
        return Conflict, (f"Your clinic is already organization {clinic.organization_npi}; "
                          "a clinic is one organization.")
    return Claim(clinic_id=clinic.id, kind="organization", npi=npi,
                 organization_id=organization.id, attestation=ORGANIZATION_ATTESTATION)


def request_claims(clinic: Clinic, npis: list[str], *, attest: bool,
                   evidence: str | None = None) -> list[Claim]:
    """Claim registry records by NPI, all or nothing: every NPI must be claimable. The
    error is the first refused NPI's (404, 409 or 422), with every NPI's reason."""
    require_approved(clinic)
    if not attest:
        raise Invalid("Confirm that these providers practice at your clinic.",
                      {"attest": ["Must be true."]})
    npis = list(dict.fromkeys((npi or "").strip() for npi in npis))
    if not npis or len(npis) > MAX_CLAIMS_PER_REQUEST:
        raise Invalid(f"Claim between 1 and {MAX_CLAIMS_PER_REQUEST} NPIs at once.",
                      {"npis": ["Wrong number of NPIs."]})
    evidence = " ".join((evidence or "").split())[:MAX_EVIDENCE_LENGTH] or None
    actor = current_actor()
    made, problems, first = [], {}, None
    for npi in npis:
        found = _problem_for(clinic, npi)
        if isinstance(found, Claim):
            found.evidence = evidence
            found.requested_by_user_id, found.requested_by_token_id = \
                actor.user_id, actor.token_id
            made.append(found)
        else:
            problems[npi] = [found[1]]
            first = first or found
    if problems:
        error_class, message = first
        raise error_class(message if len(npis) == 1 else
                          f"{len(problems)} of {len(npis)} NPIs cannot be claimed; "
                          "nothing was claimed.", {"npis": problems})
    db.session.add_all(made)
    db.session.flush()
    for claim in made:
        log_activity("claim_requested", clinic.id, {"claim_id": claim.id, "npi": claim.npi})
    commit_or_conflict()
    return made


def clinic_claims(clinic: Clinic) -> list[Claim]:
    """The clinic's claims, newest first."""
    return list(db.session.scalars(select(Claim).where(Claim.clinic_id == clinic.id)
                                   .order_by(Claim.id.desc())))


def pending_claims() -> list[Claim]:
    """Claims waiting for an operator, oldest first."""
    return list(db.session.scalars(select(Claim).where(Claim.status == "pending")
                                   .order_by(Claim.created_at, Claim.id)))


def decide_claim(claim_id: int, approve: bool, reason: str | None,
                 operator: User | None = None) -> Claim:
    """An operator approves or rejects a pending claim (a rejection needs a reason)."""
    claim = db.session.get(Claim, claim_id, with_for_update=True)
    if claim is None:
        raise NotFound(f"No claim has id {claim_id}.")
    reason = " ".join((reason or "").split())[:500] or None
    if claim.status != "pending":
        raise Conflict(f"This claim was {claim.status} already.")
    if not approve and not reason:
        raise Invalid("Give a reason for rejecting.", {"reason": ["Needed to reject."]})
    if approve:
        require_approved(claim.clinic)
        _transfer(claim)
    claim.status = "approved" if approve else "rejected"
    claim.reason, claim.decided_at = reason, utcnow()
    claim.decided_by_user_id = operator.id if operator is not None else None
    log_activity(f"claim_{claim.status}", claim.clinic_id,
                 {"claim_id": claim.id, "npi": claim.npi, "reason": reason})
    if approve:
        for other in db.session.scalars(select(Claim).where(
                Claim.npi == claim.npi, Claim.status == "pending", Claim.id != claim.id)):
            other.status, other.reason, other.decided_at = "rejected", FIRST_WINS, utcnow()
            log_activity("claim_rejected", other.clinic_id,
                         {"claim_id": other.id, "npi": other.npi, "reason": FIRST_WINS})
    commit_or_conflict()
    return claim


def _transfer(claim: Claim) -> None:
    clinic = claim.clinic
    if claim.kind == "listing":
        provider = db.session.get(Provider, claim.provider_id, with_for_update=True)
        if provider is None or provider.clinic_id is not None:
            raise Conflict("This listing was claimed by another clinic first.")
        _move(provider, clinic, "claim")
        return
    organization = db.session.get(Clinic, claim.organization_id, with_for_update=True)
    if organization is None or organization.status != "unclaimed":
        raise Conflict("This organization was claimed by another clinic first.")
    if clinic.organization_npi:
        raise Conflict(f"The clinic is already organization {clinic.organization_npi}.")
    npi = organization.organization_npi
    organization.organization_npi, organization.status = None, "merged"
    db.session.flush()  # the organization NPI is unique: free it first
    clinic.organization_npi = npi
    for provider in db.session.scalars(select(Provider).where(
            Provider.clinic_id == organization.id)):
        _move(provider, clinic, "claim")


def _move(provider: Provider, clinic: Clinic | None, action: str,
          by: Clinic | None = None) -> None:
    old = provider.clinic_id
    provider.clinic_id = clinic.id if clinic is not None else None
    changes = {"clinic_id": {"old": old, "new": provider.clinic_id}}
    if action == "release":
        changes["last_verified_at"] = {"old": provider.last_verified_at, "new": None}
        provider.last_verified_at = None
    record_audit(provider, by or clinic, action, changes, source="claim")


def release_listing(clinic: Clinic, provider_id: int) -> Provider:
    """Give a listing back to the registry: unclaimed and unverified (hidden from patients
    until a clinic claims and verifies it again)."""
    provider = clinic_provider(clinic, provider_id)
    _move(provider, None, "release", by=clinic)
    db.session.flush()
    log_activity("listing_released", clinic.id, {"provider_id": provider.id,
                                                     "npi": provider.npi})
    db.session.commit()
    return provider
