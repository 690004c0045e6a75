"""One vocabulary for bootstrap tokens and certificate keys: the word on a button, the state a
row shows and the audit action it writes are the same word, and this module is where each is
written down (README.md's vocabulary table says the same in prose; tests/unit/test_token_vocabulary.py
holds the two together).

How a token *ended* is one stored word (``BootstrapToken.ended_as``), set by the service that
ended it from the audit action it records, so the state shown can never disagree with the record:
``token.consumed`` shows "consumed", ``token.retired`` "retired", and so on.

"Expiring" is one rule for tokens and certificate keys alike: the last quarter of the lifetime it
was given. A fresh two-hour token and a fresh two-hour certificate key are both "valid" for
90 minutes and "expiring" for the last 30; a 24-hour token is "expiring" for its last 6 hours.
A fraction (rather than the policy's rotate-before time) because a fixed window longer than a
short token's whole life made every such token "expiring" from its first second.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from datetime import timedelta

# "Expiring" once this share of the lifetime (expiry minus creation) or less is left.
EXPIRING_SHARE = 4  # the last quarter


def expiring_window(created_at: datetime.datetime, expires_at: datetime.datetime) -> timedelta:
    """How long before its expiry a token or certificate key counts as expiring."""
    return max(expires_at - created_at, timedelta(0)) / EXPIRING_SHARE


def is_expiring(created_at: datetime.datetime, expires_at: datetime.datetime, now: datetime.datetime) -> bool:
    return now < expires_at and expires_at - now <= expiring_window(created_at, expires_at)


@dataclass(frozen=True)
class Term:
    """One word of the vocabulary: ``key`` is what code and CSS use (``data-state``), ``label``
    what a person reads, ``audit`` the action the audit trail records for it (empty when the
    state is computed from the clock and nothing is recorded)."""

    key: str
    label: str
    meaning: str
    audit: str = ""


# --- token states (computed by BootstrapToken.state) ---------------------------------------------

VALID = Term("valid", "valid", "in the cluster and usable; more than a quarter of its lifetime left", "token.created")
EXPIRING = Term("expiring", "expiring", "still usable, in the last quarter of its lifetime")
EXPIRED = Term(
    "expired", "expired", "its expiry passed; the cluster's token cleaner deletes the Secret", "token.expired"
)
REVOKED = Term(
    "revoked", "revoked", "a person revoked it (Revoke, or a node reset): its Secret was deleted", "token.revoked"
)
CONSUMED = Term(
    "consumed",
    "consumed",
    "used by its node: the node joined and is Ready, so the policy deleted the token",
    "token.consumed",
)
RETIRED = Term("retired", "retired", "replaced by its successor; deleted when the grace period ended", "token.retired")
LIFETIME_ENDED = Term(
    "lifetime-ended",
    "lifetime ended",
    "deleted at the policy's hard maximum lifetime",
    "token.lifetime_ended",
)
EXTERNAL = Term("external", "external", "made in the cluster without Kubeboard (found by a sync)", "token.imported")
GONE = Term("gone", "gone", "its Secret vanished from the cluster before it expired", "token.gone")

TOKEN_STATES: tuple[Term, ...] = (VALID, EXPIRING, EXPIRED, REVOKED, CONSUMED, RETIRED, LIFETIME_ENDED, EXTERNAL, GONE)
# States in which the token still works in the cluster (a countdown, the actions).
LIVE_STATES = frozenset({VALID.key, EXPIRING.key, EXTERNAL.key})
# The ways a token is deleted by Kubeboard: the audit action recorded -> the state it shows after.
ENDINGS: dict[str, Term] = {term.audit: term for term in (REVOKED, CONSUMED, RETIRED, LIFETIME_ENDED)}


def ending_for(audit_action: str) -> str:
    """The state a deleted token shows, from the audit action that recorded its deletion."""
    return ENDINGS[audit_action].key


# --- certificate key states ------------------------------------------------------------------------

KEY_VALID = Term("valid", "valid", "usable for control-plane joins; more than a quarter of its lifetime left")
KEY_EXPIRING = Term("expiring", "expiring", "still usable, in the last quarter of its two hours")
KEY_EXPIRED = Term("expired", "expired", "its two hours passed; the key was wiped", "certificate_key.expired")
KEY_SUPERSEDED = Term(
    "superseded", "superseded", "a newer key replaced it; the key was wiped", "certificate_key.issued"
)
CERTIFICATE_KEY_STATES: tuple[Term, ...] = (KEY_VALID, KEY_EXPIRING, KEY_EXPIRED, KEY_SUPERSEDED)


# --- actions: the button a person presses and the record it writes ----------------------------------

CREATE = Term("create", "Create token", "a new token, shown once", "token.created")
ROTATE = Term("rotate", "Rotate", "a successor now; this token is retired after the grace period", "token.rotated")
REVOKE = Term("revoke", "Revoke", "delete the token's Secret from the cluster at once", "token.revoked")
REVEAL = Term("reveal", "Reveal", "show the whole token again (admins)", "token.revealed")
JOIN_COMMAND = Term(
    "join-command",
    "Join command",
    "show a worker or control-plane join command (admins)",
    "token.join_command_revealed",
)
SYNC = Term("sync", "Sync with the cluster", "compare the cluster's token Secrets with Kubeboard's", "token.synced")
SAVE_POLICY = Term("save-policy", "Save policy", "change the cluster's token policy", "token_policy.changed")
NEW_CERTIFICATE_KEY = Term(
    "new-certificate-key", "New certificate key", "upload the control-plane certificates", "certificate_key.issued"
)
REVEAL_CERTIFICATE_KEY = Term("reveal-key", "Reveal", "show the certificate key (admins)", "certificate_key.revealed")

TOKEN_ACTIONS: tuple[Term, ...] = (
    CREATE,
    ROTATE,
    REVOKE,
    REVEAL,
    JOIN_COMMAND,
    SYNC,
    SAVE_POLICY,
    NEW_CERTIFICATE_KEY,
    REVEAL_CERTIFICATE_KEY,
)


def state_label(key: str) -> str:
    """What a person reads for a token state key ("lifetime-ended" -> "lifetime ended")."""
    for term in TOKEN_STATES + CERTIFICATE_KEY_STATES:
        if term.key == key:
            return term.label
    return key.replace("-", " ").replace("_", " ")
