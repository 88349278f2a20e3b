# ruff: noqa
import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODE_UNSPECIFIED: _ClassVar[Mode]
    MODE_HYBRID: _ClassVar[Mode]
    MODE_KNN: _ClassVar[Mode]
    MODE_BM25: _ClassVar[Mode]
MODE_UNSPECIFIED: Mode
MODE_HYBRID: Mode
MODE_KNN: Mode
MODE_BM25: Mode

class Filters(_message.Message):
    __slots__ = ("sources", "doc_types", "doc_ids", "updated_after", "updated_before")
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    DOC_TYPES_FIELD_NUMBER: _ClassVar[int]
    DOC_IDS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    sources: _containers.RepeatedScalarFieldContainer[str]
    doc_types: _containers.RepeatedScalarFieldContainer[str]
    doc_ids: _containers.RepeatedScalarFieldContainer[str]
    updated_after: _timestamp_pb2.Timestamp
    updated_before: _timestamp_pb2.Timestamp
    def __init__(self, sources: _Optional[_Iterable[str]] = ..., doc_types: _Optional[_Iterable[str]] = ..., doc_ids: _Optional[_Iterable[str]] = ..., updated_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("query", "k", "mode", "filters")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    query: str
    k: int
    mode: Mode
    filters: Filters
    def __init__(self, query: _Optional[str] = ..., k: _Optional[int] = ..., mode: _Optional[_Union[Mode, str]] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ...) -> None: ...

class Citation(_message.Message):
    __slots__ = ("doc_id", "version", "title", "path", "source", "section", "doc_type", "page_start", "page_end", "chunk_index", "chunk_id")
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SECTION_FIELD_NUMBER: _ClassVar[int]
    DOC_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAGE_START_FIELD_NUMBER: _ClassVar[int]
    PAGE_END_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    doc_id: str
    version: str
    title: str
    path: str
    source: str
    section: str
    doc_type: str
    page_start: int
    page_end: int
    chunk_index: int
    chunk_id: str
    def __init__(self, doc_id: _Optional[str] = ..., version: _Optional[str] = ..., title: _Optional[str] = ..., path: _Optional[str] = ..., source: _Optional[str] = ..., section: _Optional[str] = ..., doc_type: _Optional[str] = ..., page_start: _Optional[int] = ..., page_end: _Optional[int] = ..., chunk_index: _Optional[int] = ..., chunk_id: _Optional[str] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("id", "text", "score", "ranks", "updated_at", "citation")
    class RanksEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RANKS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    CITATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    score: float
    ranks: _containers.ScalarMap[str, int]
    updated_at: _timestamp_pb2.Timestamp
    citation: Citation
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., score: _Optional[float] = ..., ranks: _Optional[_Mapping[str, int]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., citation: _Optional[_Union[Citation, _Mapping]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("query", "mode", "k", "took_ms", "hits", "degraded")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    TOOK_MS_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    query: str
    mode: Mode
    k: int
    took_ms: float
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    degraded: bool
    def __init__(self, query: _Optional[str] = ..., mode: _Optional[_Union[Mode, str]] = ..., k: _Optional[int] = ..., took_ms: _Optional[float] = ..., hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., degraded: _Optional[bool] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("query", "k", "mode", "filters", "max_context_chars")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    MAX_CONTEXT_CHARS_FIELD_NUMBER: _ClassVar[int]
    query: str
    k: int
    mode: Mode
    filters: Filters
    max_context_chars: int
    def __init__(self, query: _Optional[str] = ..., k: _Optional[int] = ..., mode: _Optional[_Union[Mode, str]] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ..., max_context_chars: _Optional[int] = ...) -> None: ...

class ContextCitation(_message.Message):
    __slots__ = ("n", "label", "doc_id", "version", "title", "path", "source", "pages", "page_start", "page_end", "chunk_indexes", "chunk_ids")
    N_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PAGES_FIELD_NUMBER: _ClassVar[int]
    PAGE_START_FIELD_NUMBER: _ClassVar[int]
    PAGE_END_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEXES_FIELD_NUMBER: _ClassVar[int]
    CHUNK_IDS_FIELD_NUMBER: _ClassVar[int]
    n: int
    label: str
    doc_id: str
    version: str
    title: str
    path: str
    source: str
    pages: str
    page_start: int
    page_end: int
    chunk_indexes: _containers.RepeatedScalarFieldContainer[int]
    chunk_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, n: _Optional[int] = ..., label: _Optional[str] = ..., doc_id: _Optional[str] = ..., version: _Optional[str] = ..., title: _Optional[str] = ..., path: _Optional[str] = ..., source: _Optional[str] = ..., pages: _Optional[str] = ..., page_start: _Optional[int] = ..., page_end: _Optional[int] = ..., chunk_indexes: _Optional[_Iterable[int]] = ..., chunk_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("query", "mode", "took_ms", "context", "citations", "truncated", "hits", "degraded")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TOOK_MS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    query: str
    mode: Mode
    took_ms: float
    context: str
    citations: _containers.RepeatedCompositeFieldContainer[ContextCitation]
    truncated: bool
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    degraded: bool
    def __init__(self, query: _Optional[str] = ..., mode: _Optional[_Union[Mode, str]] = ..., took_ms: _Optional[float] = ..., context: _Optional[str] = ..., citations: _Optional[_Iterable[_Union[ContextCitation, _Mapping]]] = ..., truncated: _Optional[bool] = ..., hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., degraded: _Optional[bool] = ...) -> None: ...

class GetDocumentRequest(_message.Message):
    __slots__ = ("doc_id",)
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    doc_id: str
    def __init__(self, doc_id: _Optional[str] = ...) -> None: ...

class Document(_message.Message):
    __slots__ = ("doc_id", "version", "seq", "source", "path", "content_hash", "status", "reason", "error_code", "title", "doc_type", "size", "chunk_count", "page_count", "created_at", "updated_at", "metadata", "groups")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DOC_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    PAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    doc_id: str
    version: str
    seq: int
    source: str
    path: str
    content_hash: str
    status: str
    reason: str
    error_code: str
    title: str
    doc_type: str
    size: int
    chunk_count: int
    page_count: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    metadata: _containers.ScalarMap[str, str]
    groups: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, doc_id: _Optional[str] = ..., version: _Optional[str] = ..., seq: _Optional[int] = ..., source: _Optional[str] = ..., path: _Optional[str] = ..., content_hash: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., error_code: _Optional[str] = ..., title: _Optional[str] = ..., doc_type: _Optional[str] = ..., size: _Optional[int] = ..., chunk_count: _Optional[int] = ..., page_count: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., groups: _Optional[_Iterable[str]] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("id", "version", "chunk_index", "text", "title", "section", "page_start", "page_end", "doc_type", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SECTION_FIELD_NUMBER: _ClassVar[int]
    PAGE_START_FIELD_NUMBER: _ClassVar[int]
    PAGE_END_FIELD_NUMBER: _ClassVar[int]
    DOC_TYPE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: str
    chunk_index: int
    text: str
    title: str
    section: str
    page_start: int
    page_end: int
    doc_type: str
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., version: _Optional[str] = ..., chunk_index: _Optional[int] = ..., text: _Optional[str] = ..., title: _Optional[str] = ..., section: _Optional[str] = ..., page_start: _Optional[int] = ..., page_end: _Optional[int] = ..., doc_type: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DocumentDetail(_message.Message):
    __slots__ = ("document", "versions", "chunks", "searchable")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    SEARCHABLE_FIELD_NUMBER: _ClassVar[int]
    document: Document
    versions: _containers.RepeatedCompositeFieldContainer[Document]
    chunks: _containers.RepeatedCompositeFieldContainer[Chunk]
    searchable: bool
    def __init__(self, document: _Optional[_Union[Document, _Mapping]] = ..., versions: _Optional[_Iterable[_Union[Document, _Mapping]]] = ..., chunks: _Optional[_Iterable[_Union[Chunk, _Mapping]]] = ..., searchable: _Optional[bool] = ...) -> None: ...

class Turn(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class AnswerRequest(_message.Message):
    __slots__ = ("query", "k", "filters", "conversation")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    query: str
    k: int
    filters: Filters
    conversation: _containers.RepeatedCompositeFieldContainer[Turn]
    def __init__(self, query: _Optional[str] = ..., k: _Optional[int] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ..., conversation: _Optional[_Iterable[_Union[Turn, _Mapping]]] = ...) -> None: ...

class AnswerCitation(_message.Message):
    __slots__ = ("n", "doc_id", "version", "title", "path", "source", "section", "pages", "page_start", "page_end", "chunk_ids", "quote")
    N_FIELD_NUMBER: _ClassVar[int]
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SECTION_FIELD_NUMBER: _ClassVar[int]
    PAGES_FIELD_NUMBER: _ClassVar[int]
    PAGE_START_FIELD_NUMBER: _ClassVar[int]
    PAGE_END_FIELD_NUMBER: _ClassVar[int]
    CHUNK_IDS_FIELD_NUMBER: _ClassVar[int]
    QUOTE_FIELD_NUMBER: _ClassVar[int]
    n: int
    doc_id: str
    version: str
    title: str
    path: str
    source: str
    section: str
    pages: str
    page_start: int
    page_end: int
    chunk_ids: _containers.RepeatedScalarFieldContainer[str]
    quote: str
    def __init__(self, n: _Optional[int] = ..., doc_id: _Optional[str] = ..., version: _Optional[str] = ..., title: _Optional[str] = ..., path: _Optional[str] = ..., source: _Optional[str] = ..., section: _Optional[str] = ..., pages: _Optional[str] = ..., page_start: _Optional[int] = ..., page_end: _Optional[int] = ..., chunk_ids: _Optional[_Iterable[str]] = ..., quote: _Optional[str] = ...) -> None: ...

class AnswerSources(_message.Message):
    __slots__ = ("sources", "provider", "rewritten_query")
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    REWRITTEN_QUERY_FIELD_NUMBER: _ClassVar[int]
    sources: _containers.RepeatedCompositeFieldContainer[AnswerCitation]
    provider: str
    rewritten_query: str
    def __init__(self, sources: _Optional[_Iterable[_Union[AnswerCitation, _Mapping]]] = ..., provider: _Optional[str] = ..., rewritten_query: _Optional[str] = ...) -> None: ...

class AnswerDelta(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class AnswerReset(_message.Message):
    __slots__ = ("provider", "reason")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    provider: str
    reason: str
    def __init__(self, provider: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ...) -> None: ...

class Grounding(_message.Message):
    __slots__ = ("removed_citations", "repointed_citations", "added_citations", "unsupported_sentences", "injections_cut", "revised")
    REMOVED_CITATIONS_FIELD_NUMBER: _ClassVar[int]
    REPOINTED_CITATIONS_FIELD_NUMBER: _ClassVar[int]
    ADDED_CITATIONS_FIELD_NUMBER: _ClassVar[int]
    UNSUPPORTED_SENTENCES_FIELD_NUMBER: _ClassVar[int]
    INJECTIONS_CUT_FIELD_NUMBER: _ClassVar[int]
    REVISED_FIELD_NUMBER: _ClassVar[int]
    removed_citations: int
    repointed_citations: int
    added_citations: int
    unsupported_sentences: _containers.RepeatedScalarFieldContainer[str]
    injections_cut: int
    revised: bool
    def __init__(self, removed_citations: _Optional[int] = ..., repointed_citations: _Optional[int] = ..., added_citations: _Optional[int] = ..., unsupported_sentences: _Optional[_Iterable[str]] = ..., injections_cut: _Optional[int] = ..., revised: _Optional[bool] = ...) -> None: ...

class AnswerResult(_message.Message):
    __slots__ = ("query", "answer", "citations", "abstained", "abstain_reason", "provider", "model", "usage", "took_ms", "timings", "rewritten_query", "confidence", "cached", "grounding")
    class TimingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    QUERY_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    ABSTAINED_FIELD_NUMBER: _ClassVar[int]
    ABSTAIN_REASON_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    TOOK_MS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    REWRITTEN_QUERY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    GROUNDING_FIELD_NUMBER: _ClassVar[int]
    query: str
    answer: str
    citations: _containers.RepeatedCompositeFieldContainer[AnswerCitation]
    abstained: bool
    abstain_reason: str
    provider: str
    model: str
    usage: Usage
    took_ms: float
    timings: _containers.ScalarMap[str, float]
    rewritten_query: str
    confidence: float
    cached: bool
    grounding: Grounding
    def __init__(self, query: _Optional[str] = ..., answer: _Optional[str] = ..., citations: _Optional[_Iterable[_Union[AnswerCitation, _Mapping]]] = ..., abstained: _Optional[bool] = ..., abstain_reason: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., took_ms: _Optional[float] = ..., timings: _Optional[_Mapping[str, float]] = ..., rewritten_query: _Optional[str] = ..., confidence: _Optional[float] = ..., cached: _Optional[bool] = ..., grounding: _Optional[_Union[Grounding, _Mapping]] = ...) -> None: ...

class AnswerEvent(_message.Message):
    __slots__ = ("citations", "delta", "reset", "done")
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    citations: AnswerSources
    delta: AnswerDelta
    reset: AnswerReset
    done: AnswerResult
    def __init__(self, citations: _Optional[_Union[AnswerSources, _Mapping]] = ..., delta: _Optional[_Union[AnswerDelta, _Mapping]] = ..., reset: _Optional[_Union[AnswerReset, _Mapping]] = ..., done: _Optional[_Union[AnswerResult, _Mapping]] = ...) -> None: ...
