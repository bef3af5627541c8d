"""Deterministic transcripts for the simulators' detail endpoints: the same conversation id always gets the
same turns, in every process (``random.Random`` seeded with a string hashes it with SHA-512, not ``hash()``).

Sizes are realistic: as many turns as the listing announces (tens for most conversations), each a sentence or
three, so a detail body is a few KB, as the vendors' are.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_USER = (
    "Hi, I am calling about my last invoice, it looks higher than usual.",
    "My parcel was supposed to arrive on Tuesday and it still has not shown up.",
    "Can you tell me why my card was charged twice this month?",
    "I would like to change the delivery address on my open order.",
    "The app keeps logging me out every time I switch to another screen.",
    "Yes, that is right, the order number should be in the email you sent me.",
    "No, I did not receive any confirmation, neither by email nor by text message.",
    "Could you please check whether the refund has been processed already?",
    "I have been a customer for years and this is the first time something like this happens.",
    "That would be great, thank you, please go ahead with that.",
    "Sorry, could you repeat the last part? The line was a bit noisy.",
    "I tried resetting the password twice, but the link in the email had expired both times.",
)
_AGENT = (
    "Thanks for reaching out, I can help you with that right away.",
    "Let me look up your account, could you confirm the email address you registered with?",
    "I can see the order in our system; it left our warehouse yesterday afternoon.",
    "I am sorry about the trouble, I understand how frustrating that must be.",
    "I have opened a ticket with our billing team and marked it as urgent.",
    "The refund was issued this morning and should reach your account within three to five business days.",
    "I have updated the delivery address; you will get a confirmation by email in a few minutes.",
    "For security reasons I will send a one-time code to the phone number on file.",
    "Is there anything else I can help you with today?",
    "I have noted that on your account so the next agent can see the whole history.",
    "The duplicate charge was an authorization hold and it will disappear on its own within a week.",
    "I have sent you a new password reset link; it stays valid for twenty-four hours this time.",
)


@dataclass(frozen=True)
class Turn:
    """One message: who spoke (``user`` or ``agent``), what was said, and when (seconds into the call)."""

    role: str
    text: str
    offset: int


def turns(conversation_id: str, count: int, duration: int, *, salt: str = "") -> list[Turn]:
    """``count`` turns of ``conversation_id`` spread over ``duration`` seconds, agent first, then taking turns
    (so ``count // 2`` are the user's: a listing can announce the counts without building the transcript),
    offsets ascending."""
    rng = random.Random(f"{salt}:{conversation_id}")
    out: list[Turn] = []
    offsets = sorted(rng.randrange(max(1, duration)) for _ in range(max(0, count - 1)))
    for i in range(count):
        role = "user" if i % 2 else "agent"
        pool = _AGENT if role == "agent" else _USER
        text = " ".join(rng.choice(pool) for _ in range(rng.randint(1, 3)))
        out.append(Turn(role, text, 0 if i == 0 else offsets[i - 1]))
    return out
