"""The decision for one changed item: a pure function of (incoming item, link, other side, settings, now).

`decide_outlook_change` answers for a change seen in Outlook (writes go to the ERP);
`decide_erp_change` for a change seen in the ERP (writes go to Outlook). The order is always:
removal → scope (R05 R06 R09 R13 R16 R17 R34; a linked item leaving scope is unlinked, R32) →
re-found link (R21) → mirror gone (R19, R20) → echo (R22) → conflict (R18) → write.
See docs/mapping.md for the table.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from shared.envelope import Kind

from .fingerprint import fingerprint, synced_fields
from .model import Activity, ConflictPolicy, Contact, Direction, Link, UserSettings, kind_of
from .rules import Skip, erp_scope, outlook_scope

Item = Activity | Contact

_EPOCH = datetime.min.replace(tzinfo=UTC)
# Synced fields Outlook keeps in categories and extended properties: writing them sends attendees nothing.
QUIET_FIELDS = frozenset({"chrono", "participants", "contact", "partner_code"})


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    UNLINK = "unlink"
    SKIP = "skip"
    NOOP = "noop"
    # The other side wins: the incoming change is dropped and journaled; `winner` says which side.
    CONFLICT = "conflict"
    # R20: a contact removed in Outlook loses only this user's assignment in the ERP.
    REMOVE_ASSIGNMENT = "remove_assignment"
    FAIL = "fail"


@dataclass(frozen=True)
class Decision:
    """What to do with one item, by which rule, and the fingerprint the link keeps afterwards.

    `fingerprint` is that of the state both sides hold once the decision is carried out (None when
    the link goes away). `relink`: record or refresh the link even when nothing is written (R21, R22).
    `changed` names the synced fields that differ between the two sides, for the journal (R25, R26).
    `quiet`: an event update that must touch only categories and extended properties (R31).
    """

    action: Action
    rule: str | None
    reason: str
    fingerprint: str | None
    winner: Direction | None = None
    relink: bool = False
    changed: tuple[str, ...] = ()
    quiet: bool = False

    @classmethod
    def fail(cls, reason: str, rule: str | None = None) -> Decision:
        return cls(Action.FAIL, rule, reason, None)


def changed_fields(a: Item | None, b: Item | None) -> tuple[str, ...]:
    """The synced fields in which two items differ."""
    if a is None or b is None:
        return ()
    fa, fb = synced_fields(a), synced_fields(b)
    return tuple(sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k)))


def winner_of(policy: ConflictPolicy, outlook_modified: datetime | None, erp_modified: datetime | None) -> Direction:
    """R18: the side whose change wins when both changed; last modified by default, a tie to the ERP."""
    if policy is ConflictPolicy.OUTLOOK_WINS:
        return Direction.OUTLOOK_TO_ERP
    if policy is ConflictPolicy.ERP_WINS:
        return Direction.ERP_TO_OUTLOOK
    if (outlook_modified or _EPOCH) > (erp_modified or _EPOCH):
        return Direction.OUTLOOK_TO_ERP
    return Direction.ERP_TO_OUTLOOK


def _skipped(skip: Skip, link: Link | None) -> Decision:
    if link is not None and skip.unlink:
        return Decision(Action.UNLINK, skip.rule, f"{skip.reason}; link removed, nothing deleted (R32)", None)
    return Decision(Action.SKIP, skip.rule, skip.reason, None)


def _stamp(when: datetime | None) -> str:
    return when.isoformat() if when else "unknown"


def _conflict(
    *, incoming: Item, other: Item, incoming_side: Direction, settings: UserSettings, relink: bool = False
) -> Decision:
    """Both sides changed (or a lost link was re-found on differing items): the policy decides (R18)."""
    outlook, erp = (incoming, other) if incoming_side is Direction.OUTLOOK_TO_ERP else (other, incoming)
    winner = winner_of(settings.conflict_policy, outlook.modified_at, erp.modified_at)
    changed = changed_fields(incoming, other)
    why = (
        f"both sides changed ({', '.join(changed)}); policy {settings.conflict_policy.value}: "
        f"Outlook {_stamp(outlook.modified_at)}, ERP {_stamp(erp.modified_at)}"
    )
    if winner is incoming_side:
        return Decision(
            Action.UPDATE, "R18", f"{why}; incoming change wins", fingerprint(incoming), winner, relink, changed
        )
    return Decision(
        Action.CONFLICT,
        "R18",
        f"{why}; incoming change loses and is journaled",
        fingerprint(other),
        winner,
        relink,
        changed,
    )


def _owner_moved(item: Item | None, settings: UserSettings) -> bool:
    return isinstance(item, Activity) and bool(item.representative) and item.representative != settings.code


# ---------------------------------------------------------------- Outlook → ERP


def _outlook_switch_off(kind: Kind, settings: UserSettings) -> Skip | None:
    if not settings.enabled:
        return Skip("R16", "user is not enabled", unlink=True)
    if kind is Kind.CONTACT and not settings.contacts_outlook_to_erp:
        return Skip("R16", "contacts Outlook → ERP are switched off", unlink=True)
    if kind is not Kind.CONTACT and not settings.activities_outlook_to_erp:
        return Skip("R16", "activities Outlook → ERP are switched off", unlink=True)
    if not settings.kind_switch(kind):
        return Skip("R16", f"{kind.value} sync is switched off", unlink=True)
    return None


def _outlook_removed(kind: Kind, link: Link | None, erp_item: Item | None, settings: UserSettings) -> Decision:
    if link is None:
        return Decision(Action.NOOP, None, "removed in Outlook, never synced", None)
    off = _outlook_switch_off(kind, settings)
    if off:
        return Decision(Action.UNLINK, off.rule, f"removed in Outlook but {off.reason}; ERP item kept (R32)", None)
    if erp_item is None:
        return Decision(Action.UNLINK, "R20", "removed in Outlook, already gone from the ERP", None)
    if _owner_moved(erp_item, settings):
        return Decision(
            Action.UNLINK,
            "R13",
            "removed from a mailbox the ERP activity no longer belongs to (reassigned); ERP item kept (R32)",
            None,
        )
    if kind is Kind.CONTACT:
        return Decision(
            Action.REMOVE_ASSIGNMENT,
            "R20",
            "contact removed in Outlook: only this user's assignment is removed in the ERP",
            None,
        )
    if fingerprint(erp_item) != link.fingerprint and settings.conflict_policy is ConflictPolicy.ERP_WINS:
        return Decision(
            Action.CONFLICT,
            "R18",
            "removed in Outlook after an ERP change; policy erp_wins keeps the ERP item — re-create it in Outlook",
            fingerprint(erp_item),
            Direction.ERP_TO_OUTLOOK,
        )
    return Decision(Action.DELETE, "R20", "removed in Outlook: deleted in the ERP", None)


def decide_outlook_change(
    *,
    kind: Kind,
    item: Item | None,
    link: Link | None,
    erp_item: Item | None,
    settings: UserSettings,
    now: datetime,
) -> Decision:
    """What to do in the ERP about an Outlook item (None: removed in Outlook)."""
    if item is None:
        return _outlook_removed(kind, link, erp_item, settings)
    if kind_of(item) is not kind:
        return Decision.fail(f"Outlook item is a {kind_of(item).value}, the change says {kind.value}")
    skip = outlook_scope(kind, item, settings, now)
    if skip:
        return _skipped(skip, link)
    if _owner_moved(erp_item, settings):
        assert isinstance(erp_item, Activity)
        if link is not None and fingerprint(item) == link.fingerprint:
            # Not an Outlook edit (e.g. the late notification of our own write): the reassignment's
            # ERP change moves the mirror out of this mailbox (R32); unlinking here would strand it.
            return Decision(
                Action.NOOP,
                "R32",
                f"unchanged in Outlook; the ERP activity now belongs to {erp_item.representative} "
                "and its mirror moves with the ERP's change",
                link.fingerprint,
            )
        skip = Skip("R13", f"the ERP activity now belongs to {erp_item.representative}", unlink=True)
        return _skipped(skip, link)
    fp = fingerprint(item)
    if link is None:
        if erp_item is None:
            rule = None if kind is Kind.CONTACT else "R12"
            what = "contact created in the ERP" if kind is Kind.CONTACT else "created in the ERP as public"
            return Decision(Action.CREATE, rule, what, fp)
        # R21: the link was lost but the ERP id on the Outlook item found the mirror again.
        if fingerprint(erp_item) == fp:
            return Decision(
                Action.NOOP, "R21", "lost link re-found through the ERP id; both sides agree", fp, relink=True
            )
        return _conflict(
            incoming=item, other=erp_item, incoming_side=Direction.OUTLOOK_TO_ERP, settings=settings, relink=True
        )
    # The mirror being gone outranks the echo check: a deleted mirror is never "in sync".
    if erp_item is None:
        if fp != link.fingerprint and settings.conflict_policy is ConflictPolicy.OUTLOOK_WINS:
            return Decision(
                Action.CREATE,
                "R18",
                "changed in Outlook after the ERP deleted it; policy outlook_wins re-creates it in the ERP",
                fp,
                Direction.OUTLOOK_TO_ERP,
                relink=True,
            )
        return Decision(
            Action.CONFLICT,
            "R19",
            "changed in Outlook but deleted in the ERP: the deletion wins — delete the Outlook item",
            None,
            Direction.ERP_TO_OUTLOOK,
        )
    if fp == link.fingerprint:
        return Decision(Action.NOOP, "R22", "no synced field changed (echo of a sync write)", fp)
    erp_fp = fingerprint(erp_item)
    if erp_fp == fp:
        return Decision(Action.NOOP, "R22", "both sides already agree", fp, relink=True)
    if erp_fp != link.fingerprint:
        decision = _conflict(incoming=item, other=erp_item, incoming_side=Direction.OUTLOOK_TO_ERP, settings=settings)
        return _erp_wins_guard(decision, kind, item)
    return Decision(Action.UPDATE, None, "changed in Outlook", fp, changed=changed_fields(item, erp_item))


def _erp_wins_guard(decision: Decision, kind: Kind, item: Item) -> Decision:
    """R31 outranks R18: when the ERP's version wins over an Outlook meeting with attendees, only what
    Exchange does not mail (categories, extended properties) may be written back to Outlook."""
    if (
        decision.action is not Action.CONFLICT
        or decision.winner is not Direction.ERP_TO_OUTLOOK
        or kind is not Kind.EVENT
        or not isinstance(item, Activity)
        or not item.mails_attendees
    ):
        return decision
    if decision.changed and set(decision.changed) <= QUIET_FIELDS:
        return replace(decision, quiet=True)
    return Decision(
        Action.SKIP,
        "R31",
        f"{decision.reason}; but the Outlook meeting has attendees: writing "
        f"{', '.join(decision.changed) or 'it'} would mail them an update; change it in Outlook",
        None,
        Direction.ERP_TO_OUTLOOK,
        changed=decision.changed,
    )


# ---------------------------------------------------------------- ERP → Outlook


def _erp_switch_off(kind: Kind, settings: UserSettings) -> Skip | None:
    if not settings.enabled:
        return Skip("R16", "user is not enabled", unlink=True)
    if kind is Kind.CONTACT and not settings.contacts_two_way:
        return Skip("R17", "contacts are synced Outlook → ERP only", unlink=True)
    if kind is not Kind.CONTACT and not settings.activities_erp_to_outlook:
        return Skip("R16", "activities ERP → Outlook are switched off", unlink=True)
    if not settings.kind_switch(kind):
        return Skip("R16", f"{kind.value} sync is switched off", unlink=True)
    return None


def _quiet_guard(decision: Decision, kind: Kind, graph_item: Item | None) -> Decision:
    """R31: a meeting with attendees organised from this mailbox is never deleted or rewritten by the sync."""
    if kind is not Kind.EVENT or not isinstance(graph_item, Activity) or not graph_item.mails_attendees:
        return decision
    if decision.action is Action.DELETE:
        return Decision(
            Action.UNLINK,
            "R31",
            "the Outlook meeting has attendees: deleting it would mail them a "
            "cancellation; link removed, the meeting stays in Outlook",
            None,
        )
    if decision.action is Action.UPDATE:
        if decision.changed and set(decision.changed) <= QUIET_FIELDS:
            return Decision(
                decision.action,
                decision.rule,
                f"{decision.reason}; attendees present: only categories and extended properties are written (R31)",
                decision.fingerprint,
                decision.winner,
                decision.relink,
                decision.changed,
                quiet=True,
            )
        return Decision(
            Action.SKIP,
            "R31",
            "the Outlook meeting has attendees: writing "
            f"{', '.join(decision.changed) or 'it'} would mail them an update; change it in Outlook",
            None,
            changed=decision.changed,
        )
    return decision


def _erp_deleted(kind: Kind, link: Link | None, graph_item: Item | None, settings: UserSettings) -> Decision:
    if link is None:
        return Decision(Action.NOOP, None, "deleted in the ERP, never synced", None)
    off = _erp_switch_off(kind, settings)
    if off:
        return Decision(Action.UNLINK, off.rule, f"deleted in the ERP but {off.reason}; Outlook item kept (R32)", None)
    if graph_item is None:
        return Decision(Action.UNLINK, "R19", "deleted in the ERP, already gone from Outlook", None)
    if fingerprint(graph_item) != link.fingerprint and settings.conflict_policy is ConflictPolicy.OUTLOOK_WINS:
        return Decision(
            Action.CONFLICT,
            "R18",
            "deleted in the ERP after an Outlook change; policy outlook_wins "
            "keeps the Outlook item — re-create it in the ERP",
            fingerprint(graph_item),
            Direction.OUTLOOK_TO_ERP,
        )
    return _quiet_guard(
        Decision(Action.DELETE, "R19", "deleted in the ERP: deleted in Outlook", None), kind, graph_item
    )


def decide_erp_change(
    *,
    kind: Kind,
    item: Item | None,
    link: Link | None,
    graph_item: Item | None,
    settings: UserSettings,
    now: datetime,
) -> Decision:
    """What to do in this user's mailbox about an ERP item (None: deleted in the ERP)."""
    if item is None:
        return _erp_deleted(kind, link, graph_item, settings)
    if kind_of(item) is not kind:
        return Decision.fail(f"ERP item is a {kind_of(item).value}, the change says {kind.value}")
    skip = erp_scope(kind, item, settings, now)
    if skip:
        if skip.rule == "R13" and isinstance(item, Activity) and link is not None and settings.enabled:
            if graph_item is None:
                return Decision(
                    Action.UNLINK,
                    "R32",
                    f"reassigned to {item.representative}; the mirror is already gone from this mailbox",
                    None,
                )
            # R32: reassigning moves the mirror — out of this mailbox, into the new owner's.
            moved = Decision(
                Action.DELETE, "R32", f"reassigned to {item.representative}: the mirror moves to their mailbox", None
            )
            return _quiet_guard(moved, kind, graph_item)
        return _skipped(skip, link)
    fp = fingerprint(item)
    if link is None:
        if graph_item is None:
            rule = "R11" if item.partner_code else None
            return Decision(Action.CREATE, rule, "created in Outlook", fp)
        if fingerprint(graph_item) == fp:
            return Decision(
                Action.NOOP, "R21", "lost link re-found through the ERP id; both sides agree", fp, relink=True
            )
        decision = _conflict(
            incoming=item, other=graph_item, incoming_side=Direction.ERP_TO_OUTLOOK, settings=settings, relink=True
        )
        return _quiet_guard(decision, kind, graph_item)
    # The mirror being gone outranks the echo check: a removed mirror is never "in sync".
    if graph_item is None:
        if fp != link.fingerprint and settings.conflict_policy is ConflictPolicy.ERP_WINS:
            return Decision(
                Action.CREATE,
                "R18",
                "changed in the ERP after Outlook removed it; policy erp_wins re-creates it in Outlook",
                fp,
                Direction.ERP_TO_OUTLOOK,
                relink=True,
            )
        return Decision(
            Action.CONFLICT,
            "R20",
            "changed in the ERP but removed in Outlook: the removal wins — apply it to the ERP",
            None,
            Direction.OUTLOOK_TO_ERP,
        )
    if fp == link.fingerprint:
        return Decision(Action.NOOP, "R22", "no synced field changed (echo of a sync write)", fp)
    graph_fp = fingerprint(graph_item)
    if graph_fp == fp:
        return Decision(Action.NOOP, "R22", "both sides already agree", fp, relink=True)
    if graph_fp != link.fingerprint:
        decision = _conflict(incoming=item, other=graph_item, incoming_side=Direction.ERP_TO_OUTLOOK, settings=settings)
    else:
        decision = Decision(Action.UPDATE, None, "changed in the ERP", fp, changed=changed_fields(item, graph_item))
    return _quiet_guard(decision, kind, graph_item)
