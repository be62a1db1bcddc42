"""Benchmark of llm-dispatcher: `python -m bench` (see bench/__main__.py).

Modules, each a separate process so that the target under test, the fake upstream and the
load generator do not share an event loop (or a GIL):

- upstream.py      fast fake OpenAI upstream (raw asyncio Protocol + httptools on uvloop);
                   streamed answers are 50 OpenAI-shaped chat.completion.chunk events + [DONE]
- loadgen.py       closed-loop load generator (raw HTTP/1.1 client on uvloop; with --stream it
                   reads the answers as SSE: chunks, time to the first token)
- relay_aiohttp.py minimal relay: uvicorn + one aiohttp.ClientSession
- relay_httpx.py   minimal relay: uvicorn + one httpx.AsyncClient (default or aiohttp transport)
- procs.py         starting, pinning, readiness and stopping of those processes
- report.py        the tables (plain and stream), the PASS/FAIL verdicts and the JSON file
"""
