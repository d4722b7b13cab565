"""Answers to reactions: at most one public notice per result, and one per user in a while."""

from __future__ import annotations

from unittest.mock import AsyncMock, MagicMock

from bot.chat.conversation import Conversation
from bot.chat.replies import NOTICED_RESULTS_KEPT, ReactionNotices, ReactionReply


def test_one_notice_per_result_whatever_number_of_members_react() -> None:
    notices = ReactionNotices()
    assert notices.may_tell(1, result_id=500)
    assert not any(notices.may_tell(user_id, result_id=500) for user_id in range(2, 42))
    assert notices.may_tell(2, result_id=501), "another result has its own notice"
    assert not notices.may_tell(1, result_id=502), "user 1 was told a moment ago"


def test_the_results_remembered_are_bounded() -> None:
    notices = ReactionNotices()
    for result_id in range(NOTICED_RESULTS_KEPT + 10):
        notices.may_tell(result_id, result_id=result_id)
    assert len(notices.noticed) == NOTICED_RESULTS_KEPT and 0 not in notices.noticed


async def test_forty_reactions_with_the_same_refusal_post_one_message() -> None:
    notices = ReactionNotices()
    sent: list[str] = []
    for user_id in range(40):
        conversation = MagicMock(spec=Conversation)
        conversation.user_id, conversation.mention = user_id, f"<@{user_id}>"
        conversation.tell = AsyncMock(side_effect=sent.append)
        await ReactionReply(conversation, notices, result_id=77).say("Busy.")
    assert sent == ["<@0> Busy."]
