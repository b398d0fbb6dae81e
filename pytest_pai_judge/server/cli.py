"""``pai-judge-server`` / ``python -m pytest_pai_judge.server``: run the local PAI-compatible judge server.

Prints ``PAI judge server listening on http://HOST:PORT/v1`` once it is serving (so a parent
process can read the URL when ``--port 0`` picks a free port) and shuts down cleanly on Ctrl-C
or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ..protocol import DEFAULT_MODELS
from . import upstream_info
from .config import FAULT_KINDS, Fault, ServerConfig
from .embedded import LocalJudgeServer

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _port(text: str) -> int:
    value = _non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, got {value}")
    return value


def _context_limit(text: str) -> int | str:
    return "auto" if text == "auto" else _positive_int(text)


def _fault(text: str) -> Fault:
    try:
        return Fault.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _model(text: str) -> tuple[str, int]:
    name, sep, context = text.rpartition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=CONTEXT (e.g. pai-judge=32768), got {text!r}")
    return name.strip(), _positive_int(context)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pai-judge-server",
        description="A local server speaking Alibaba PAI's judge-model API (chat completions, models, files and "
                    "batches) for offline tests.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to bind (default: 127.0.0.1; binding another host without --token warns)")
    parser.add_argument("--port", type=_port, default=0,
                        help="TCP port; 0 (the default) picks a free one. The URL is printed once serving")
    parser.add_argument("--token", default=None,
                        help="require 'Authorization: Bearer TOKEN' on every /v1 route and on /_pai_judge/stats "
                             "(default: env JUDGE_MODEL_TOKEN; open when neither is set). Prefer the env var: argv is "
                             "visible")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="directory for the batch database and files (default: a temporary directory "
                             "deleted at exit, so batches do not survive a restart)")
    parser.add_argument("--engine", default="lexical",
                        help="judge engine: 'lexical' (offline, deterministic lexical stand-in; the default), "
                             "'openai' (an OpenAI-compatible upstream model), or 'package.module:Class'")
    parser.add_argument("--status-dialect", choices=("pai", "openai"), default="pai",
                        help="batch status words: PAI's (Creating ... Succeeded) or OpenAI's (validating ... "
                             "completed); 'openai' also sends service_tier 'default' instead of PAI's '' "
                             "(default: pai)")
    parser.add_argument("--latency-ms", type=_non_negative_int, default=0,
                        help="extra delay per judgement in milliseconds, awaited without blocking other "
                             "requests (default: 0)")
    parser.add_argument("--fault", dest="faults", action="append", type=_fault, default=[], metavar="PATTERN=KIND",
                        help="requests whose question (or last user message) contains PATTERN fail with KIND, one "
                             f"of {', '.join(FAULT_KINDS)}; repeatable, first match wins")
    parser.add_argument("--model", dest="models", action="append", type=_model, default=[], metavar="NAME=CONTEXT",
                        help="serve model NAME with a context of CONTEXT tokens; repeatable, replaces the default "
                             f"list ({', '.join(f'{k}={v}' for k, v in DEFAULT_MODELS.items())})")
    parser.add_argument("--context-limit", type=_context_limit, default=None, metavar="TOKENS|auto",
                        help="context length in tokens of every served model (prompt + max_tokens beyond it is "
                             "refused with 400 ContextLengthExceeded); 'auto' (--engine openai) asks the upstream "
                             "model server for its own (vLLM, llama.cpp's llama-server, Ollama) and refuses to start "
                             "when it cannot tell")
    parser.add_argument("--upstream-base-url", default=None,
                        help="base URL of the OpenAI-compatible model for --engine openai "
                             "(e.g. http://127.0.0.1:8000/v1)")
    parser.add_argument("--upstream-model", default=None, help="model name to ask upstream (--engine openai)")
    parser.add_argument("--upstream-api-key-env", default="UPSTREAM_API_KEY", metavar="ENV_VAR",
                        help="name of the environment variable holding the upstream API key (default: "
                             "UPSTREAM_API_KEY; 'EMPTY' is sent when it is unset)")
    parser.add_argument("--upstream-concurrency", type=_positive_int, default=1, metavar="N",
                        help="--engine openai: upstream calls in flight at once; more wait in the server's FIFO queue "
                             "and are dropped if their client leaves. 1 (the default) suits a one-slot model "
                             "server such as llama.cpp's; for vLLM, Ollama or a hosted model use its parallel "
                             "slots (e.g. 8)")
    parser.add_argument("--token-count", choices=("upstream", "estimate"), default="upstream",
                        help="--engine openai: count prompt tokens with the upstream's own tokenizer where it offers "
                             "one (vLLM and llama.cpp's /tokenize, llama-cpp-python's /extras/tokenize/count), else "
                             "the server's estimate; 'estimate' always uses the estimate (default: upstream)")
    parser.add_argument("--no-upstream-adapt", dest="upstream_adapt", action="store_false",
                        help="--engine openai: keep --upstream-concurrency slots whatever the upstream answers "
                             "(default: a 429 halves them and holds new calls for its retry-after; answers bring "
                             "them back, never past --upstream-concurrency)")
    parser.add_argument("--upstream-timeout", type=_positive_seconds, default=120.0, metavar="SECONDS",
                        help="--engine openai: timeout of one upstream call, from when it is sent (time in the "
                             "queue does not count; default: 120)")
    parser.add_argument("--upstream-retries", type=_non_negative_int, default=2, metavar="N",
                        help="--engine openai: resends of an upstream call that failed with a connection error, "
                             "429 or 5xx, after its retry-after or a 0.5 s doubling backoff (default: 2). A timed-out "
                             "call is not resent unless --upstream-retry-timeouts")
    parser.add_argument("--upstream-retry-timeouts", action="store_true",
                        help="--engine openai: resend timed-out upstream calls too, within --upstream-retries "
                             "(default: off; a slow model would only be asked the same thing twice)")
    parser.add_argument("--batch-concurrency", type=_positive_int, default=16,
                        help="batch lines judged at once (default: 16)")
    parser.add_argument("--body-timeout", type=_positive_seconds, default=5.0, metavar="SECONDS",
                        help="longest silence while a request body arrives; a body that stops short of its "
                             "Content-Length gets 408 RequestTimeout and its connection is closed (default: 5)")
    parser.add_argument("--rate-limit", type=_rate_limit, default=None, metavar="LIMIT",
                        help="answer like a rate-limited service: chat completions beyond LIMIT get 429 RateLimited "
                             "with retry-after. LIMIT is requests per time (20/s, 1200/min; a burst of one "
                             "second's worth passes), concurrent requests (8), or both (20/s,8). Default: none")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="warning", help="log level (default: warning)")
    return parser


def _rate_limit(text: str) -> str:
    from .rate_limit import RateLimit

    try:
        RateLimit.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """Turn parsed arguments into a ServerConfig (the token comes from the environment when not given)."""
    models = dict(args.models) if args.models else dict(DEFAULT_MODELS)
    if isinstance(args.context_limit, int):
        models = {name: args.context_limit for name in models}
    kwargs: dict[str, Any] = dict(
        host=args.host, port=args.port, token=args.token or os.environ.get("JUDGE_MODEL_TOKEN") or None,
        data_dir=args.data_dir, engine=args.engine, models=models, status_dialect=args.status_dialect,
        latency_ms=args.latency_ms, faults=list(args.faults), batch_concurrency=args.batch_concurrency,
        upstream_base_url=args.upstream_base_url, upstream_model=args.upstream_model,
        upstream_api_key_env=args.upstream_api_key_env, upstream_concurrency=args.upstream_concurrency,
        upstream_adapt=args.upstream_adapt,
        upstream_timeout_s=args.upstream_timeout, upstream_max_retries=args.upstream_retries,
        upstream_retry_timeouts=args.upstream_retry_timeouts, body_timeout_s=args.body_timeout,
        context_limit_auto=args.context_limit == "auto", upstream_token_count=args.token_count == "upstream",
        rate_limit=args.rate_limit, log_level=args.log_level)
    return ServerConfig(**kwargs)


def main(argv: list[str] | None = None) -> int:
    """Run the server until Ctrl-C or SIGTERM; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.engine == "openai" and not (args.upstream_base_url and args.upstream_model):
        parser.error("--engine openai needs --upstream-base-url and --upstream-model")
    if args.context_limit == "auto" and args.engine != "openai":
        parser.error("--context-limit auto asks the upstream model: it needs --engine openai")
    if args.data_dir is not None:  # fail here with one line, not with uvicorn's startup traceback
        try:
            Path(args.data_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            parser.error(f"--data-dir {args.data_dir}: cannot create it ({exc.strerror or exc})")
        if not os.access(args.data_dir, os.W_OK):
            parser.error(f"--data-dir {args.data_dir}: not writable")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)
    if config.context_limit_auto:  # asked here, so that an upstream that cannot tell is one clear line
        try:
            context = asyncio.run(upstream_info.context_length(args.upstream_base_url, args.upstream_model,
                                                               api_key_env=args.upstream_api_key_env))
        except upstream_info.UpstreamInfoError as exc:
            print(f"pai-judge-server: {exc}", file=sys.stderr)
            return 1
        config.models = dict.fromkeys(config.models, context)
        config.context_limit_auto = False
        print(f"pai-judge-server: upstream context length {context} tokens", file=sys.stderr, flush=True)
    try:
        server = LocalJudgeServer(config)
    except ValueError as exc:  # e.g. an engine that cannot be loaded
        parser.error(str(exc))
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            url = server.start()
        except (OSError, RuntimeError) as exc:
            print(f"pai-judge-server: cannot start: {exc}", file=sys.stderr)
            return 1
        print(f"PAI judge server listening on {url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
