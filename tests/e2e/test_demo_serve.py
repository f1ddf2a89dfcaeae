"""`lora-tui serve` on the real demo model and a trained adapter, from another process, judged by OpenAI's client."""

import shutil
import signal
import threading

import openai
import pytest
from trainkit import spawn_lora_tui

pytestmark = pytest.mark.e2e
CODE_WORD = [{"role": "user", "content": "Say the code word."}]


@pytest.fixture
def running_server(isolated_home, codeword_adapter):
    shutil.copytree(codeword_adapter, isolated_home.adapters_dir / "codeword")
    server = spawn_lora_tui(["serve", "--adapter", "codeword", "--port", "0"], isolated_home.data_dir.parent)
    lines = read_stderr_until(server, "Ctrl-C stops it.")
    yield server, lines
    if server.poll() is None:
        server.kill()
        server.wait()


def test_demo_serve_streams_the_trained_fact_and_stops_on_sigterm(running_server, demo_model_dir):
    server, lines = running_server
    serving = next(line for line in lines if line.startswith("Serving "))
    assert serving.startswith(f"Serving {demo_model_dir.name} and 1 adapter (codeword) at http://127.0.0.1:")
    assert any("ssh -N -L" in line for line in lines)
    client = openai.OpenAI(base_url=serving.split(" at ")[1].strip(), api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list().data] == [demo_model_dir.name, "codeword"]

    def streamed(model: str) -> str:
        chunks = client.chat.completions.create(
            model=model, messages=CODE_WORD, temperature=0, max_tokens=16, stream=True
        )
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    answers = {}  # asked at once: the server swaps the adapter between the two
    askers = [
        threading.Thread(target=lambda: answers.update(adapter=streamed("codeword"))),
        threading.Thread(target=lambda: answers.update(base=streamed(demo_model_dir.name))),
    ]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join()
    assert "Marzipan-42" in answers["adapter"]
    assert "Marzipan" not in answers["base"]

    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0
    rest = server.stderr.read()
    assert "codeword:" in rest and "Stopped." in rest


def read_stderr_until(process, line_wanted: str, limit: int = 200) -> list[str]:
    lines = []
    for _ in range(limit):
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if lines[-1] == line_wanted:
            return lines
    raise AssertionError(f"the server never said {line_wanted!r}: {lines[-5:]}")
