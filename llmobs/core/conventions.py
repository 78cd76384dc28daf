"""Every attribute name that crosses a process boundary, spelled once.

Four families travel on an OTLP span (see `llmobs.core.otlp`):

- OpenTelemetry GenAI (`gen_ai.*`), the standard. The constants in
  `opentelemetry-semantic-conventions` are all marked "moved to semantic-conventions-genai" and no
  package ships the new ones, so the string values live here.
- OpenInference (`openinference.span.kind`, `llm.*`, `input.value`, ...), what Arize Phoenix reads.
- Langfuse (`langfuse.observation.*`), what Langfuse reads first.
- Our own `llmobs.*`, for whatever the span model holds that the others cannot carry exactly,
  so that `decode(encode(span)) == span`.

The value tables (operation names, OpenInference span kinds, Langfuse observation types) map our
`SpanKind` onto each family and back.
"""

from __future__ import annotations

from typing import Final

from llmobs.core.model import SpanKind

# -- OpenTelemetry resource and general attributes -----------------------------------------------

SERVICE_NAME: Final = "service.name"
ERROR_TYPE: Final = "error.type"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
EXCEPTION_EVENT: Final = "exception"

# -- OpenTelemetry GenAI ---------------------------------------------------------------------------

GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"  # deprecated for gen_ai.provider.name; still read
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"  # deprecated; still read
GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"  # deprecated; still read
GEN_AI_USAGE_TOTAL_TOKENS: Final = "gen_ai.usage.total_tokens"  # not in the spec; OpenLLMetry sets it
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
# The released name, which Phoenix and Langfuse read, and its unreleased rename (genai repo #440),
# which opentelemetry-util-genai already emits. We write both.
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_USAGE_COST: Final = "gen_ai.usage.cost"  # a vendor convention (Langfuse: total cost)
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"  # seconds
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_TOOL_DESCRIPTION: Final = "gen_ai.tool.description"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_AGENT_ID: Final = "gen_ai.agent.id"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
GEN_AI_DATA_SOURCE_ID: Final = "gen_ai.data_source.id"
GEN_AI_WORKFLOW_NAME: Final = "gen_ai.workflow.name"

# Evaluation results: one `gen_ai.evaluation.result` span event per `Evaluation` of the span
# (the event may also be emitted as a log record; on a span event it needs no parenting).
GEN_AI_EVALUATION_RESULT_EVENT: Final = "gen_ai.evaluation.result"
GEN_AI_EVALUATION_NAME: Final = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL: Final = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION: Final = "gen_ai.evaluation.explanation"
#: `error.type` on the event of an evaluation that failed (raised, timed out): its label is `error`.
EVALUATION_ERROR_TYPE: Final = "llmobs.EvaluationError"

# gen_ai.operation.name values.
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_GENERATE_CONTENT: Final = "generate_content"
OP_EMBEDDINGS: Final = "embeddings"
OP_RETRIEVAL: Final = "retrieval"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_CREATE_AGENT: Final = "create_agent"
OP_INVOKE_WORKFLOW: Final = "invoke_workflow"

#: Our kind → `gen_ai.operation.name`. Kinds missing here have no GenAI operation.
OPERATION_BY_KIND: Final[dict[SpanKind, str]] = {
    SpanKind.LLM: OP_CHAT,
    SpanKind.EMBEDDING: OP_EMBEDDINGS,
    SpanKind.TOOL: OP_EXECUTE_TOOL,
    SpanKind.RETRIEVER: OP_RETRIEVAL,
    SpanKind.AGENT: OP_INVOKE_AGENT,
    SpanKind.WORKFLOW: OP_INVOKE_WORKFLOW,
}

#: `gen_ai.operation.name` → our kind (what Phoenix and Langfuse also accept, plus `generate`).
KIND_BY_OPERATION: Final[dict[str, SpanKind]] = {
    OP_CHAT: SpanKind.LLM,
    OP_TEXT_COMPLETION: SpanKind.LLM,
    OP_GENERATE_CONTENT: SpanKind.LLM,
    "completion": SpanKind.LLM,
    "generate": SpanKind.LLM,
    OP_EMBEDDINGS: SpanKind.EMBEDDING,
    OP_RETRIEVAL: SpanKind.RETRIEVER,
    OP_EXECUTE_TOOL: SpanKind.TOOL,
    OP_INVOKE_AGENT: SpanKind.AGENT,
    OP_CREATE_AGENT: SpanKind.AGENT,
    OP_INVOKE_WORKFLOW: SpanKind.WORKFLOW,
}

# -- OpenInference ---------------------------------------------------------------------------------

OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
OPENINFERENCE_PROJECT_NAME: Final = "openinference.project.name"  # a resource attribute
LLM_MODEL_NAME: Final = "llm.model_name"
LLM_RESPONSE_MODEL_NAME: Final = "llm.response.model_name"
LLM_PROVIDER: Final = "llm.provider"
LLM_SYSTEM: Final = "llm.system"
LLM_TOKEN_COUNT_PROMPT: Final = "llm.token_count.prompt"
LLM_TOKEN_COUNT_COMPLETION: Final = "llm.token_count.completion"
LLM_TOKEN_COUNT_TOTAL: Final = "llm.token_count.total"
LLM_TOKEN_COUNT_PROMPT_CACHE_READ: Final = "llm.token_count.prompt_details.cache_read"
LLM_TOKEN_COUNT_PROMPT_CACHE_WRITE: Final = "llm.token_count.prompt_details.cache_write"
LLM_TOKEN_COUNT_COMPLETION_REASONING: Final = "llm.token_count.completion_details.reasoning"
LLM_COST_PROMPT: Final = "llm.cost.prompt"
LLM_COST_COMPLETION: Final = "llm.cost.completion"
LLM_COST_TOTAL: Final = "llm.cost.total"
LLM_INPUT_MESSAGES: Final = "llm.input_messages"  # prefix of the flattened messages
LLM_OUTPUT_MESSAGES: Final = "llm.output_messages"
INPUT_VALUE: Final = "input.value"
INPUT_MIME_TYPE: Final = "input.mime_type"
OUTPUT_VALUE: Final = "output.value"
OUTPUT_MIME_TYPE: Final = "output.mime_type"
MIME_TEXT: Final = "text/plain"
MIME_JSON: Final = "application/json"
TOOL_NAME: Final = "tool.name"
TOOL_ID: Final = "tool.id"
TOOL_DESCRIPTION: Final = "tool.description"
AGENT_NAME: Final = "agent.name"
RETRIEVAL_DOCUMENTS: Final = "retrieval.documents"  # prefix: retrieval.documents.{i}.document.*
DOCUMENT_ID: Final = "document.id"
DOCUMENT_SCORE: Final = "document.score"
DOCUMENT_CONTENT: Final = "document.content"
DOCUMENT_METADATA: Final = "document.metadata"
SESSION_ID: Final = "session.id"  # also Langfuse's
USER_ID: Final = "user.id"  # also Langfuse's
TAG_TAGS: Final = "tag.tags"
METADATA: Final = "metadata"

#: Our kind → `openinference.span.kind`.
OPENINFERENCE_KIND_BY_KIND: Final[dict[SpanKind, str]] = {
    SpanKind.LLM: "LLM",
    SpanKind.EMBEDDING: "EMBEDDING",
    SpanKind.TOOL: "TOOL",
    SpanKind.RETRIEVER: "RETRIEVER",
    SpanKind.RERANKER: "RERANKER",
    SpanKind.AGENT: "AGENT",
    SpanKind.CHAIN: "CHAIN",
    SpanKind.HANDOFF: "TOOL",  # OpenInference has no handoff; its Agents SDK instrumentation uses TOOL
    SpanKind.GUARDRAIL: "GUARDRAIL",
    SpanKind.WORKFLOW: "CHAIN",
    SpanKind.EVALUATOR: "EVALUATOR",
    SpanKind.CUSTOM: "UNKNOWN",
}

#: `openinference.span.kind` → our kind.
KIND_BY_OPENINFERENCE_KIND: Final[dict[str, SpanKind]] = {
    "LLM": SpanKind.LLM,
    "EMBEDDING": SpanKind.EMBEDDING,
    "TOOL": SpanKind.TOOL,
    "RETRIEVER": SpanKind.RETRIEVER,
    "RERANKER": SpanKind.RERANKER,
    "AGENT": SpanKind.AGENT,
    "CHAIN": SpanKind.CHAIN,
    "GUARDRAIL": SpanKind.GUARDRAIL,
    "EVALUATOR": SpanKind.EVALUATOR,
    "PROMPT": SpanKind.CHAIN,
    "DECISION": SpanKind.CHAIN,
    "UNKNOWN": SpanKind.CUSTOM,
}

#: `gen_ai.provider.name` → `llm.provider` where OpenInference spells it differently.
OPENINFERENCE_PROVIDER_BY_PROVIDER: Final[dict[str, str]] = {
    "mistral_ai": "mistralai",
    "x_ai": "xai",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
}

#: `llm.provider` → `gen_ai.provider.name`, for spans that only carry the OpenInference name.
PROVIDER_BY_OPENINFERENCE_PROVIDER: Final[dict[str, str]] = {
    "mistralai": "mistral_ai",
    "xai": "x_ai",
    "google": "gcp.gemini",
    "vertexai": "gcp.vertex_ai",
    "aws": "aws.bedrock",
    "azure": "azure.ai.openai",
}

# -- Langfuse --------------------------------------------------------------------------------------

LANGFUSE_OBSERVATION_TYPE: Final = "langfuse.observation.type"
LANGFUSE_MODEL_NAME: Final = "langfuse.observation.model.name"
LANGFUSE_USAGE_DETAILS: Final = "langfuse.observation.usage_details"  # JSON object string
LANGFUSE_COST_DETAILS: Final = "langfuse.observation.cost_details"  # JSON object string, USD
LANGFUSE_COMPLETION_START_TIME: Final = "langfuse.observation.completion_start_time"  # ISO 8601
LANGFUSE_LEVEL: Final = "langfuse.observation.level"
LANGFUSE_STATUS_MESSAGE: Final = "langfuse.observation.status_message"
LANGFUSE_INPUT: Final = "langfuse.observation.input"
LANGFUSE_OUTPUT: Final = "langfuse.observation.output"
LANGFUSE_LEVEL_ERROR: Final = "ERROR"

# Keys inside usage_details / cost_details, as Langfuse names them.
LANGFUSE_USAGE_INPUT: Final = "input"
LANGFUSE_USAGE_OUTPUT: Final = "output"
LANGFUSE_USAGE_TOTAL: Final = "total"
LANGFUSE_USAGE_CACHE_READ: Final = "input_cached_tokens"
LANGFUSE_USAGE_CACHE_WRITE: Final = "input_cache_creation"
LANGFUSE_USAGE_REASONING: Final = "output_reasoning_tokens"
LANGFUSE_COST_INPUT: Final = "input"
LANGFUSE_COST_OUTPUT: Final = "output"
LANGFUSE_COST_TOTAL: Final = "total"

#: Our kind → `langfuse.observation.type`. Model kinds are generation-like, so Langfuse shows
#: their model, usage and cost.
LANGFUSE_TYPE_BY_KIND: Final[dict[SpanKind, str]] = {
    SpanKind.LLM: "generation",
    SpanKind.EMBEDDING: "embedding",
    SpanKind.TOOL: "tool",
    SpanKind.RETRIEVER: "retriever",
    SpanKind.RERANKER: "generation",
    SpanKind.AGENT: "agent",
    SpanKind.CHAIN: "chain",
    SpanKind.HANDOFF: "span",
    SpanKind.GUARDRAIL: "guardrail",
    SpanKind.WORKFLOW: "chain",
    SpanKind.EVALUATOR: "evaluator",
    SpanKind.CUSTOM: "span",
}

#: `langfuse.observation.type` → our kind.
KIND_BY_LANGFUSE_TYPE: Final[dict[str, SpanKind]] = {
    "generation": SpanKind.LLM,
    "embedding": SpanKind.EMBEDDING,
    "tool": SpanKind.TOOL,
    "retriever": SpanKind.RETRIEVER,
    "agent": SpanKind.AGENT,
    "chain": SpanKind.CHAIN,
    "guardrail": SpanKind.GUARDRAIL,
    "evaluator": SpanKind.EVALUATOR,
    "span": SpanKind.CUSTOM,
    "event": SpanKind.CUSTOM,
}

# -- OpenLLMetry (Traceloop), read only --------------------------------------------------------------

TRACELOOP_SPAN_KIND: Final = "traceloop.span.kind"
LLM_REQUEST_TYPE: Final = "llm.request.type"
TRACELOOP_ENTITY_INPUT: Final = "traceloop.entity.input"
TRACELOOP_ENTITY_OUTPUT: Final = "traceloop.entity.output"
GEN_AI_TASK_INPUT: Final = "gen_ai.task.input"  # OpenLLMetry's copy of the entity input
GEN_AI_TASK_OUTPUT: Final = "gen_ai.task.output"

KIND_BY_TRACELOOP_KIND: Final[dict[str, SpanKind]] = {
    "workflow": SpanKind.WORKFLOW,
    "task": SpanKind.CHAIN,
    "agent": SpanKind.AGENT,
    "tool": SpanKind.TOOL,
}

# -- llmobs ----------------------------------------------------------------------------------------

LLMOBS_SPAN_KIND: Final = "llmobs.span.kind"  # its presence marks a span we encoded
LLMOBS_SPAN_NAME: Final = "llmobs.span.name"  # only when the OTel name had to follow GenAI naming
LLMOBS_FRAMEWORK: Final = "llmobs.framework"
LLMOBS_TTFT_MS: Final = "llmobs.ttft_ms"  # exact; gen_ai's seconds do not round-trip in floats
LLMOBS_COST_SOURCE: Final = "llmobs.cost.source"
LLMOBS_ERROR_MESSAGE: Final = "llmobs.error.message"  # only when the status cannot carry it
LLMOBS_USAGE_EMPTY: Final = "llmobs.usage.empty"  # a usage record with no counts at all
LLMOBS_TOOL: Final = "llmobs.tool"  # JSON, only when gen_ai.tool.* cannot carry it exactly
LLMOBS_AGENT: Final = "llmobs.agent"  # likewise
LLMOBS_DOCUMENTS: Final = "llmobs.documents"  # likewise, for retrieval.documents.*
LLMOBS_ATTRIBUTES: Final = "llmobs.attributes"  # JSON of the attributes no standard key carries
# JSON list of the evaluations, only when the gen_ai.evaluation.result events cannot carry them
# exactly (an empty list, a label that is not a string, ...).
LLMOBS_EVALUATIONS: Final = "llmobs.evaluations"
#: On the `evaluator` spans of an evaluator's own model calls: the evaluation that made the call.
ATTR_EVALUATION_NAME: Final = "llmobs.evaluation.name"
#: The `framework` of the evaluator spans llmobs records itself.
EVALUATION_FRAMEWORK: Final = "llmobs"

#: Keys of `Span.attributes` that travel as standard attributes.
ATTR_SESSION_ID: Final = "session_id"
ATTR_USER_ID: Final = "user_id"
ATTR_TAGS: Final = "tags"
ATTR_METADATA: Final = "metadata"

INSTRUMENTATION_SCOPE: Final = "llmobs"
