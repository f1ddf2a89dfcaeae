"""`lora-tui serve` on a tiny model and adapter, judged by OpenAI's own Python client."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import httpx
import openai
import pytest

from lora_tui.cli import main
from lora_tui.core.data.rendering import render_tokens
from lora_tui.core.inference.generate import Generator
from lora_tui.core.serving.plan import ServePlan, plan_serving
from lora_tui.core.serving.server import Service, bind, startup_lines
from lora_tui.core.serving.stops import StopText

QUESTION = [{"role": "user", "content": "What is 3 plus 3?"}]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tiny_adapter):
    """The tiny model and its adapter `arith`, served on a free port; what it served, in order."""
    plan = plan_serving(tiny_adapter.parent, tiny_model_dir.parent / "no-models", [], str(tiny_model_dir))
    served = []
    service = Service(plan, Generator(plan.model_path, plan.model_name), bind("127.0.0.1", 0), on_served=served.append)
    service.start()
    yield SimpleNamespace(service=service, served=served, eos=service.engine.generator.tokenizer.eos_token_id)
    service.stop()


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.service.url, api_key="unused", max_retries=0)


def no_end(server, **extra) -> dict:
    """Request options that keep a random model talking: its end-of-turn token banned."""
    return {"extra_body": {"logit_bias": {str(server.eos): -100}}, **extra}


def test_models_are_the_base_and_its_adapters(client):
    models = client.models.list().data
    assert [m.id for m in models] == ["tiny-llama", "arith"]
    assert client.models.retrieve("arith").parent == "tiny-llama"


def test_a_whole_answer_counts_its_tokens(client, server):
    answer = client.chat.completions.create(model="arith", messages=QUESTION, temperature=0, max_tokens=6)
    prompt = render_tokens(server.service.engine.generator.tokenizer, QUESTION, add_generation_prompt=True)
    assert answer.object == "chat.completion" and answer.model == "arith"
    assert answer.usage.prompt_tokens == len(prompt)
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.choices[0].message.role == "assistant"


def test_a_stream_is_the_whole_answer_in_pieces(client):
    whole = client.chat.completions.create(model="arith", messages=QUESTION, temperature=0, max_tokens=10)
    chunks = list(
        client.chat.completions.create(
            model="arith",
            messages=QUESTION,
            temperature=0,
            max_tokens=10,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_the_adapter_and_the_base_answer_differently(client):
    def answer(model: str) -> str:
        reply = client.chat.completions.create(model=model, messages=QUESTION, temperature=0, max_tokens=12)
        return reply.choices[0].message.content

    assert answer("arith") != answer("tiny-llama")
    assert answer("arith") == answer("arith")  # and swapping back gives the same adapter


def test_max_tokens_is_where_an_answer_is_cut(client, server):
    answer = client.chat.completions.create(**no_end(server), model="arith", messages=QUESTION, max_tokens=7)
    assert answer.usage.completion_tokens == 7 and answer.choices[0].finish_reason == "length"


def test_a_seed_repeats_an_answer_even_in_a_batch(client, server):
    def sampled(seed: int) -> str:
        reply = client.chat.completions.create(
            **no_end(server), model="arith", messages=QUESTION, temperature=1.0, max_tokens=16, seed=seed
        )
        return reply.choices[0].message.content

    alone = sampled(7)
    together = run_at_once([lambda: sampled(7), lambda: sampled(8), lambda: sampled(7)])
    assert together[0] == together[2] == alone and together[1] != alone


def test_a_stop_string_ends_the_answer_before_it(client, server):
    full = client.completions.create(
        **no_end(server), model="tiny-llama", prompt="What is", temperature=0, max_tokens=24
    ).choices[0]
    stop = full.text[8:11]
    cut = client.completions.create(
        **no_end(server), model="tiny-llama", prompt="What is", temperature=0, max_tokens=24, stop=[stop]
    ).choices[0]
    assert cut.text == full.text[: full.text.index(stop)] and cut.finish_reason == "stop"


def test_plain_completions_stream_too(client, server):
    chunks = list(
        client.completions.create(**no_end(server), model="tiny-llama", prompt="the", max_tokens=5, stream=True)
    )
    assert chunks[-1].choices[0].finish_reason == "length"
    assert "".join(c.choices[0].text for c in chunks)


def test_streams_at_once_each_arrive_whole(client, server):
    def stream(model: str) -> tuple[str, str, int]:
        chunks = list(
            client.chat.completions.create(
                **no_end(server),
                model=model,
                messages=QUESTION,
                max_tokens=20,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return text, chunks[-2].choices[0].finish_reason, chunks[-1].usage.completion_tokens

    results = run_at_once([lambda m=m: stream(m) for m in ("arith", "arith", "tiny-llama", "arith")])
    assert all(reason == "length" and tokens == 20 and text for text, reason, tokens in results)


def test_a_long_answer_does_not_hold_up_the_model_list(client, server):
    listed = []

    def long_answer():
        client.chat.completions.create(**no_end(server), model="arith", messages=QUESTION, max_tokens=3000)

    worker = threading.Thread(target=long_answer)
    worker.start()
    wait_until(lambda: server.service.engine.generating > 0)
    listed.append([m.id for m in client.models.list().data])
    still_generating = worker.is_alive()
    worker.join()
    assert listed == [["tiny-llama", "arith"]] and still_generating


def test_a_client_that_leaves_stops_its_generation(server):
    before = len(server.served)
    body = {
        "model": "arith",
        "messages": QUESTION,
        "max_tokens": 5000,
        "stream": True,
        "logit_bias": {str(server.eos): -100},
    }
    with httpx.stream("POST", f"{server.service.url}/chat/completions", json=body, timeout=30) as response:
        chunks = (line for line in response.iter_lines() if line.startswith("data: "))
        for _ in range(3):
            next(chunks)
    wait_until(lambda: len(server.served) > before)
    ended = server.served[before]
    assert ended.finish_reason == "cancelled" and ended.completion_tokens < 5000


def test_an_unknown_model_is_a_404_and_serving_goes_on(client):
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="nope", messages=QUESTION)
    assert raised.value.code == "model_not_found" and "arith" in raised.value.message
    assert client.models.list().data


@pytest.mark.parametrize(
    ("request_options", "words"),
    [
        ({"messages": []}, "'messages' must be a non-empty array"),
        ({"messages": QUESTION, "max_tokens": -1}, "'max_tokens' must be at least 1"),
        ({"messages": QUESTION, "temperature": 3}, "'temperature' must be at least 0 and at most 2"),
        ({"messages": [{"role": "bot", "content": "hi"}]}, "message 1 has role 'bot'"),
        ({"messages": QUESTION, "n": 2}, "'n' must be 1"),
        ({"messages": QUESTION, "stop": ["a", "b", "c", "d", "e"]}, "'stop' must be a string or a list"),
        ({"messages": QUESTION, "extra_body": {"logit_bias": {"999999": 1}}}, "is not a token id"),
    ],
)
def test_a_bad_request_is_a_400_that_says_why(client, request_options, words):
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="arith", **request_options)
    assert words in raised.value.message
    assert client.models.list().data


def test_a_body_that_is_not_json_is_a_400(server):
    response = httpx.post(f"{server.service.url}/chat/completions", content=b"{not json")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    missing = httpx.get(f"{server.service.url}/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["message"]


def test_an_api_key_is_needed_when_one_is_set(tiny_model_dir):
    plan = ServePlan(tiny_model_dir, "tiny", "tiny", {})
    service = Service(plan, Generator(tiny_model_dir), bind("127.0.0.1", 0), api_key="s3cret").start()
    try:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=service.url, api_key="wrong", max_retries=0).models.list()
        keyed = openai.OpenAI(base_url=service.url, api_key="s3cret", max_retries=0)
        assert [m.id for m in keyed.models.list().data] == ["tiny"]
    finally:
        service.stop()


def test_the_start_lines_say_the_url_the_tunnel_and_any_danger():
    plan = ServePlan(Path("m"), "m", "m", {"a": Path("a")})
    exposed = SimpleNamespace(plan=plan, host="0.0.0.0", port=8123, url="http://0.0.0.0:8123/v1")
    lines = startup_lines(exposed, api_key=None)
    assert lines[0] == "Serving m and 1 adapter (a) at http://0.0.0.0:8123/v1"
    assert "ssh -N -L 8123:127.0.0.1:8123" in lines[1]
    assert any(line.startswith("warning: listening on 0.0.0.0 with no API key") for line in lines)
    assert not any("warning" in line for line in startup_lines(exposed, api_key="k"))


def test_stop_strings_hold_back_only_what_could_start_one():
    stops = StopText(["END", "\n\n"])
    assert stops.feed("abc E") == ("abc ", False)
    assert stops.feed("N") == ("", False)
    assert stops.feed("x\n") == ("ENx", False)
    assert stops.feed("\nmore") == ("", True)
    held = StopText(["END"])
    assert held.feed("EN") == ("", False) and held.rest() == "EN"


# The command line: bad input is one sentence and exit 1, before anything listens --------------


def test_a_port_in_use_is_refused_before_the_model_loads(tiny_model_dir, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--model", str(tiny_model_dir), "--port", str(port)]) == 1
    error = capsys.readouterr().err
    assert f"Port {port} on 127.0.0.1 is in use" in error and "Loading" not in error


def test_an_adapter_whose_base_is_gone_is_refused(tiny_model_dir, tiny_adapter, isolated_home, tmp_path, capsys):
    moved_model = shutil.copytree(tiny_model_dir, tmp_path / "soon-gone")
    install_adapter(tiny_adapter, isolated_home.adapters_dir, "orphan", base=moved_model)
    shutil.rmtree(moved_model)
    assert main(["serve", "--adapter", "orphan", "--port", "0"]) == 1
    assert "The base model of 'orphan' is missing" in capsys.readouterr().err


def test_adapters_of_two_bases_need_the_model_named(tiny_model_dir, tiny_adapter, isolated_home, tmp_path, capsys):
    other_model = shutil.copytree(tiny_model_dir, tmp_path / "other-llama")
    install_adapter(tiny_adapter, isolated_home.adapters_dir, "first", base=tiny_model_dir)
    install_adapter(tiny_adapter, isolated_home.adapters_dir, "second", base=other_model)
    assert main(["serve", "--adapter", "first", "second", "--port", "0"]) == 1
    error = capsys.readouterr().err
    assert "different base models" in error and "--model" in error
    assert main(["serve", "--model", str(tiny_model_dir), "--adapter", "second", "--port", "0"]) == 1
    assert "was trained on" in capsys.readouterr().err


def test_with_only_a_model_every_adapter_of_it_is_served(tiny_model_dir, tiny_adapter, isolated_home, tmp_path):
    other_model = shutil.copytree(tiny_model_dir, tmp_path / "other-llama")
    install_adapter(tiny_adapter, isolated_home.adapters_dir, "mine", base=tiny_model_dir)
    install_adapter(tiny_adapter, isolated_home.adapters_dir, "theirs", base=other_model)
    plan = plan_serving(isolated_home.adapters_dir, isolated_home.models_dir, [], str(tiny_model_dir))
    assert list(plan.adapters) == ["mine"] and plan.base_name == "tiny-llama"


# Helpers --------------------------------------------------------------------------------------


def install_adapter(trained: Path, adapters_dir: Path, name: str, base: Path) -> Path:
    folder = shutil.copytree(trained, adapters_dir / name)
    meta_path = folder / "lora_tui.json"
    meta = json.loads(meta_path.read_text())
    meta.update(base_model=base.name, base_model_path=str(base))
    meta_path.write_text(json.dumps(meta))
    return folder


def run_at_once(calls: list) -> list:
    results = [None] * len(calls)

    def run(index: int) -> None:
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def wait_until(condition, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_command_takes_its_key_from_the_environment_and_stops_on_sigterm(tiny_model_dir, isolated_home):
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "LORA_TUI_HOME": str(isolated_home.data_dir.parent), "LORA_TUI_API_KEY": "from-env"}
    server = subprocess.Popen(
        [sys.executable, "-m", "lora_tui", "serve", "--model", str(tiny_model_dir), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = [server.stderr.readline().rstrip() for _ in range(5)]
        assert lines[-1] == "Ctrl-C stops it." and "Every request needs the API key" in lines[-2], lines
        url = next(line for line in lines if line.startswith("Serving ")).split(" at ")[1]
        assert httpx.get(f"{url}/models").status_code == 401
        keyed = httpx.get(f"{url}/models", headers={"Authorization": "Bearer from-env"})
        assert [m["id"] for m in keyed.json()["data"]] == ["tiny-llama"]
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        assert "Stopped." in server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
