"""The fields each OpenAI SDK response type declares, for `modelmesh._response`.

One entry per type, its fields in the SDK's order: `name` when the SDK requires it, `name?` when it
is optional (default None), `name:Type` when its value is another object (or a list of them), and
`A|B` a union whose members `TAGS` tells apart by a field's value. A type named like
`chat_completion_chunk.Choice` is one whose bare name two SDK types share.

Derived from the newest SDK (older ones declare a subset of these fields) by
tests/test_response_objects.py, whose test fails when the installed SDK declares a field otherwise or
one this table lacks; `python tests/test_response_objects.py` prints the table afresh. Plain data:
this module imports nothing, so neither does a client that reads it.
"""
from __future__ import annotations

__all__ = ["SDK_VERSION", "TYPES", "TAGS"]

SDK_VERSION = "3.60.0"

TYPES: dict[str, tuple[str, ...]] = {
    "ChatCompletion": (
        "id", "choices:chat_completion.Choice", "created", "model", "object", "metadata?",
        "moderation?:chat_completion.Moderation", "service_tier?", "system_fingerprint?", "usage?:CompletionUsage",
    ),
    "chat_completion.Choice": (
        "finish_reason", "index", "logprobs?:chat_completion.ChoiceLogprobs", "message:ChatCompletionMessage",
    ),
    "chat_completion.ChoiceLogprobs": ("content?:ChatCompletionTokenLogprob", "refusal?:ChatCompletionTokenLogprob"),
    "ChatCompletionTokenLogprob": ("token", "bytes?", "logprob", "top_logprobs:TopLogprob"),
    "TopLogprob": ("token", "bytes?", "logprob"),
    "ChatCompletionMessage": (
        "content?", "refusal?", "role", "annotations?:Annotation", "audio?:ChatCompletionAudio",
        "function_call?:FunctionCall",
        "tool_calls?:ChatCompletionMessageFunctionToolCall|ChatCompletionMessageCustomToolCall",
    ),
    "Annotation": ("type", "url_citation:AnnotationURLCitation"),
    "AnnotationURLCitation": ("end_index", "start_index", "title", "url"),
    "ChatCompletionAudio": ("id", "data", "expires_at", "transcript"),
    "FunctionCall": ("arguments", "name"),
    "ChatCompletionMessageFunctionToolCall": ("id", "function:Function", "type"),
    "Function": ("arguments", "name"),
    "ChatCompletionMessageCustomToolCall": ("id", "custom:Custom", "type"),
    "Custom": ("input", "name"),
    "chat_completion.Moderation": (
        "input:chat_completion.ModerationInputModerationResults|chat_completion.ModerationInputError",
        "output:chat_completion.ModerationOutputModerationResults|chat_completion.ModerationOutputError",
    ),
    "chat_completion.ModerationInputModerationResults": (
        "model", "results:chat_completion.ModerationInputModerationResultsResult", "type",
    ),
    "chat_completion.ModerationInputModerationResultsResult": (
        "categories", "category_applied_input_types", "category_scores", "flagged", "model", "type",
    ),
    "chat_completion.ModerationInputError": ("code", "message", "type"),
    "chat_completion.ModerationOutputModerationResults": (
        "model", "results:chat_completion.ModerationOutputModerationResultsResult", "type",
    ),
    "chat_completion.ModerationOutputModerationResultsResult": (
        "categories", "category_applied_input_types", "category_scores", "flagged", "model", "type",
    ),
    "chat_completion.ModerationOutputError": ("code", "message", "type"),
    "CompletionUsage": (
        "completion_tokens", "prompt_tokens", "total_tokens", "completion_tokens_details?:CompletionTokensDetails",
        "prompt_tokens_details?:PromptTokensDetails",
    ),
    "CompletionTokensDetails": (
        "accepted_prediction_tokens?", "audio_tokens?", "reasoning_tokens?", "rejected_prediction_tokens?",
        "text_tokens?",
    ),
    "PromptTokensDetails": (
        "audio_tokens?", "cache_write_tokens?", "cached_tokens?", "image_tokens?", "text_tokens?",
    ),
    "ChatCompletionChunk": (
        "id", "choices:chat_completion_chunk.Choice", "created", "model", "object",
        "moderation?:chat_completion_chunk.Moderation", "obfuscation?", "service_tier?", "system_fingerprint?",
        "usage?:CompletionUsage",
    ),
    "chat_completion_chunk.Choice": (
        "delta:ChoiceDelta", "index", "finish_reason?", "logprobs?:chat_completion_chunk.ChoiceLogprobs",
    ),
    "ChoiceDelta": (
        "audio?:ChoiceDeltaAudio", "content?", "function_call?:ChoiceDeltaFunctionCall", "refusal?", "role?",
        "tool_calls?:ChoiceDeltaToolCall",
    ),
    "ChoiceDeltaAudio": ("id?", "data?", "expires_at?", "transcript?"),
    "ChoiceDeltaFunctionCall": ("arguments?", "name?"),
    "ChoiceDeltaToolCall": ("index", "id?", "function?:ChoiceDeltaToolCallFunction", "type?"),
    "ChoiceDeltaToolCallFunction": ("arguments?", "name?"),
    "chat_completion_chunk.ChoiceLogprobs": (
        "content?:ChatCompletionTokenLogprob", "refusal?:ChatCompletionTokenLogprob",
    ),
    "chat_completion_chunk.Moderation": (
        "input:chat_completion_chunk.ModerationInputModerationResults|chat_completion_chunk.ModerationInputError",
        "output:chat_completion_chunk.ModerationOutputModerationResults|chat_completion_chunk.ModerationOutputError",
    ),
    "chat_completion_chunk.ModerationInputModerationResults": (
        "model", "results:chat_completion_chunk.ModerationInputModerationResultsResult", "type",
    ),
    "chat_completion_chunk.ModerationInputModerationResultsResult": (
        "categories", "category_applied_input_types", "category_scores", "flagged", "model", "type",
    ),
    "chat_completion_chunk.ModerationInputError": ("code", "message", "type"),
    "chat_completion_chunk.ModerationOutputModerationResults": (
        "model", "results:chat_completion_chunk.ModerationOutputModerationResultsResult", "type",
    ),
    "chat_completion_chunk.ModerationOutputModerationResultsResult": (
        "categories", "category_applied_input_types", "category_scores", "flagged", "model", "type",
    ),
    "chat_completion_chunk.ModerationOutputError": ("code", "message", "type"),
    "CreateEmbeddingResponse": ("data:Embedding", "model", "object", "usage:Usage"),
    "Embedding": ("embedding", "index", "object"),
    "Usage": ("prompt_tokens", "total_tokens"),
    "Model": ("id", "created", "object", "owned_by", "shutdown_date?"),
    "SyncPage": ("data:Model", "object"),
}

TAGS: dict[str, tuple[str, str]] = {
    "ChatCompletionMessageFunctionToolCall": ("type", "function"),
    "ChatCompletionMessageCustomToolCall": ("type", "custom"),
    "chat_completion.ModerationInputModerationResults": ("type", "moderation_results"),
    "chat_completion.ModerationInputError": ("type", "error"),
    "chat_completion.ModerationOutputModerationResults": ("type", "moderation_results"),
    "chat_completion.ModerationOutputError": ("type", "error"),
    "chat_completion_chunk.ModerationInputModerationResults": ("type", "moderation_results"),
    "chat_completion_chunk.ModerationInputError": ("type", "error"),
    "chat_completion_chunk.ModerationOutputModerationResults": ("type", "moderation_results"),
    "chat_completion_chunk.ModerationOutputError": ("type", "error"),
}
