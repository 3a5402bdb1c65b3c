"""One OpenAI-compatible chat-completions endpoint per role (explainer, grounder), via ``openai``.

The client already does what a long run against a remote model needs: a timeout per request,
retries with exponential backoff and jitter on 408/409/429/5xx, timeouts and connection errors,
and ``Retry-After`` honoured. This module adds what it lacks: an error that names the role and the
last failure once the retries are spent (the record is then rejected and the run goes on), the
token tally per role from each response's ``usage``, a check before the run that the endpoint
answers and serves the model, and the fallback from structured output to plain answers.

Structured output: a request carries ``response_format`` (a JSON schema) until the endpoint refuses
one with 400 or 422; that request is then sent again without it, and when that succeeds the role
sends plain requests for the rest of the run (its answers are read by the tolerant parser). When
the plain request fails too, the refusal was about something else and nothing changes.

The API key comes from the environment variable the caller names; it is handed to the client
only, never logged, and a local server gets a placeholder (vLLM without ``--api-key`` takes any).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    role: str
    """What it does in the pipeline ("explainer", "second explainer", "grounder"), for messages."""
    url: str
    """Base URL of the API, e.g. ``http://127.0.0.1:8000/v1`` for a vLLM server."""
    model: str
    api_key_env: str = "OPENAI_API_KEY"

    def describe(self) -> dict:
        """What run.json records of the endpoint (the variable's name, never its value)."""
        return {"url": self.url, "model": self.model, "api_key_env": self.api_key_env}


@dataclass
class Usage:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class EndpointError(RuntimeError):
    """The endpoint cannot serve the run at all (unreachable, key refused, model not served)."""


class RequestFailed(Exception):
    """A request that failed for good: the client's retries are spent or the error is not retried."""

    def __init__(self, role: str, error: str) -> None:
        super().__init__(f"{role} request failed: {error}")
        self.role = role
        self.error = error


@dataclass(frozen=True)
class Answer:
    text: str
    truncated: bool
    """The model stopped at ``max_tokens`` (a JSON answer cut short will not parse)."""


class RoleClient:
    """Chat completions for one role, with its token tally and structured-output state."""

    def __init__(
        self,
        endpoint: Endpoint,
        timeout: float,
        max_retries: int,
        structured: bool = True,
        notify: Callable[[str], None] = print,
    ) -> None:
        from openai import AsyncOpenAI

        self.endpoint = endpoint
        self.timeout = timeout
        self.max_retries = max_retries
        self.structured = structured
        self.structured_refusal: str | None = None
        self.usage = Usage()
        self._notify = notify
        self._client = AsyncOpenAI(base_url=endpoint.url, api_key=os.environ.get(endpoint.api_key_env) or "none",
                                   timeout=timeout, max_retries=max_retries)

    async def check(self) -> None:
        """Raise :class:`EndpointError` when the endpoint is unreachable, refuses the key, or lists
        models without this one; an endpoint without a model list passes (its first answer tells)."""
        import openai

        role, url = self.endpoint.role, self.endpoint.url
        try:
            page = await self._client.with_options(max_retries=min(self.max_retries, 1)).models.list()
        except openai.APIConnectionError as e:
            raise EndpointError(f"{role} endpoint {url} cannot be reached: {self.describe(e)}") from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise EndpointError(f"{role} endpoint {url} refused the API key from ${self.endpoint.api_key_env}: "
                                f"{self.describe(e)}") from None
        except openai.APIError:
            return
        served = [m.id for m in page.data]
        if served and self.endpoint.model not in served:
            raise EndpointError(f"{role} model {self.endpoint.model!r} is not served at {url}; "
                                f"it serves: {', '.join(served[:10])}")

    async def ask(
        self, messages: list[dict], response_format: dict | None, temperature: float, max_tokens: int
    ) -> Answer:
        """One answer, structured when the endpoint takes it; :class:`RequestFailed` when it fails."""
        import openai

        if not (self.structured and response_format is not None):
            return await self._create(messages, temperature, max_tokens, None)
        try:
            return await self._create(messages, temperature, max_tokens, response_format, fallback=True)
        except (openai.BadRequestError, openai.UnprocessableEntityError) as refusal:
            answer = await self._create(messages, temperature, max_tokens, None)
            if self.structured:
                self.structured = False
                self.structured_refusal = self.describe(refusal)
                self._notify(f"{self.endpoint.role} endpoint refused structured output ({self.structured_refusal}); "
                             "reading plain answers for the rest of the run")
            return answer

    async def _create(
        self, messages: list[dict], temperature: float, max_tokens: int, response_format: dict | None,
        fallback: bool = False,
    ) -> Answer:
        import openai

        extra = {"response_format": response_format} if response_format is not None else {}
        try:
            response = await self._client.chat.completions.create(
                model=self.endpoint.model, messages=messages, temperature=temperature, max_tokens=max_tokens, **extra)
        except openai.APIError as e:
            if fallback and isinstance(e, (openai.BadRequestError, openai.UnprocessableEntityError)):
                raise
            raise RequestFailed(self.endpoint.role, self.describe(e)) from None
        self.usage.requests += 1
        if response.usage is not None:
            self.usage.prompt_tokens += response.usage.prompt_tokens or 0
            self.usage.completion_tokens += response.usage.completion_tokens or 0
        if not response.choices:
            return Answer("", False)
        choice = response.choices[0]
        return Answer(choice.message.content or "", choice.finish_reason == "length")

    def describe(self, error: BaseException) -> str:
        """A one-line account of a failed request, with the retries spent where the client retried."""
        import openai

        retried = f" (after {self.max_retries} {'retry' if self.max_retries == 1 else 'retries'})" if self.max_retries else ""
        if isinstance(error, openai.APITimeoutError):
            return f"no answer within the {self.timeout:g} s timeout{retried}"
        if isinstance(error, openai.APIConnectionError):
            return f"connection failed: {error.__cause__ or error}{retried}"
        if isinstance(error, openai.APIStatusError):
            body = error.body.get("message") if isinstance(error.body, dict) else None
            message = " ".join(str(body or error.message).split())[:200]
            again = retried if error.status_code in (408, 409, 429) or error.status_code >= 500 else ""
            return f"HTTP {error.status_code} {type(error).__name__}: {message}{again}"
        return f"{type(error).__name__}: {error}"

    async def close(self) -> None:
        await self._client.close()
