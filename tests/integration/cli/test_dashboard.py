"""`edgewave dashboard` against the real API server, in a real headless browser.

The test writes the objects and their status as the operator would (no operator runs),
starts the dashboard as people do (`edgewave dashboard --port 0`), and drives Debian's
chromium with Playwright: the page shows the rollout's waves and agents, follows changes
without a reload, logs no JavaScript error, and offers actions only with `--allow-actions`
(a click writes the operator-facing `edgewave.io/request`, never the spec; the test answers
it in `status.control` as the operator would). Its screenshots are kept under
`test-artifacts/` (git-ignored). A missing browser fails the test: `make browser`
installs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgewave_api import controls, kubeyaml
from edgewave_operator.devcluster import clusters

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("EDGEWAVE_CHROMIUM", "/usr/bin/chromium"))
EDGEWAVE = Path(sys.executable).with_name("edgewave")
START_SECONDS = 60.0
UPDATE_MS = 20_000
"""How long the page may take to show a change written to the API server."""
DIGEST = "sha256:" + "b" * 64


def _held(version: str, state: str, *, p95: float | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "name": "classifier",
        "version": version,
        "digest": DIGEST,
        "backend": "ONNXRuntime",
        "state": state,
    }
    if p95 is not None:
        found |= {"p95LatencyMs": p95, "errorRate": 0.002}
    return found


def _agent_status(*models: dict[str, Any], ready: bool = True) -> dict[str, Any]:
    return {
        "runtimes": [{"name": "ONNXRuntime", "version": "1.20.1"}],
        "models": list(models),
        "lastSeen": "2026-01-02T03:04:05Z",
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "reason": "Serving" if ready else "Loading",
                "message": "",
                "lastTransitionTime": "2026-01-02T03:04:05Z",
            }
        ],
    }


def _rollout_status(*, phase: str, central: str, wave: str) -> dict[str, Any]:
    return {
        "observedGeneration": 1,
        "phase": phase,
        "message": f"{phase}: wave {wave}",
        "ready": "2/3" if central != "Succeeded" else "3/3",
        "currentVersion": "1.0.0",
        "currentWave": wave,
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if phase == "Succeeded" else "False",
                "reason": "AllWavesPassed" if phase == "Succeeded" else "WaveInProgress",
                "message": f"wave {wave}",
                "observedGeneration": 1,
                "lastTransitionTime": "2026-01-02T03:04:05Z",
            }
        ],
        "waves": [
            {
                "name": "eu-west",
                "phase": "Succeeded",
                "targets": 2,
                "updated": 2,
                "healthy": 2,
                "gate": {"samples": 31, "p95LatencyMs": 2.5, "errorRate": 0.001, "passed": True},
            },
            {"name": "eu-central", "phase": central, "targets": 1, "updated": 1, "healthy": 1}
            if central == "Succeeded"
            else {"name": "eu-central", "phase": central, "targets": 1},
        ],
        "regions": [
            {"region": "eu-west", "targets": 2, "updated": 2, "healthy": 2},
            {"region": "eu-central", "targets": 1, "updated": 1 if central == "Succeeded" else 0},
        ],
    }


class Fleet:
    """A rollout over three agents in two regions, in one test namespace."""

    def __init__(self, kube: clusters.DevCluster, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        token = namespace.rsplit("-", 1)[-1]
        self.west = [f"west-1-{token}", f"west-2-{token}"]
        self.central = f"central-1-{token}"
        self.name = "classifier-global"
        self.label = {"edgewave.test/namespace": namespace}

    def create(self) -> None:
        rollout = yaml.safe_load(
            (ROOT / "docs" / "examples" / "modelrollout-multiregion.yaml").read_text()
        )
        rollout["metadata"]["namespace"] = self.namespace
        rollout["spec"]["targets"] = {
            "regions": ["eu-west", "eu-central"],
            "selector": {"matchLabels": self.label},
        }
        rollout["spec"]["strategy"]["waves"] = rollout["spec"]["strategy"]["waves"][:2]
        agents = [
            {
                "apiVersion": "edgewave.io/v1alpha1",
                "kind": "EdgeAgent",
                "metadata": {"name": name, "labels": self.label},
                "spec": {"endpoint": f"{name}:7443", "region": region},
            }
            for name, region in [
                (self.west[0], "eu-west"),
                (self.west[1], "eu-west"),
                (self.central, "eu-central"),
            ]
        ]
        self.kube.kubectl("apply", "-f", "-", input=kubeyaml.dump_all([rollout, *agents]))
        for name in self.west:
            self.agent_status(
                name, _agent_status(_held("1.0.0", "Active", p95=2.5), _held("0.9.0", "Standby"))
            )
        self.agent_status(self.central, _agent_status(_held("0.9.0", "Active")))
        self.rollout_status(
            _rollout_status(phase="Progressing", central="Progressing", wave="eu-central")
        )
        self.kube.kubectl("apply", "-f", "-", input=kubeyaml.dump(self._event()))

    def _event(self) -> dict[str, Any]:
        uid = self.kube.kubectl(
            "get", "mro", self.name, "-n", self.namespace, "-o", "jsonpath={.metadata.uid}"
        ).stdout
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{self.name}.wave-passed", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": "edgewave.io/v1alpha1",
                "kind": "ModelRollout",
                "name": self.name,
                "namespace": self.namespace,
                "uid": uid,
            },
            "type": "Normal",
            "reason": "WavePassed",
            "message": "wave eu-west passed its gate: 31 req, p95 2.5 ms",
            "firstTimestamp": "2026-01-02T03:04:05Z",
            "lastTimestamp": "2026-01-02T03:04:05Z",
            "count": 1,
            "source": {"component": "edgewave-operator"},
        }

    def agent_status(self, name: str, status: dict[str, Any]) -> None:
        self._patch_status("edgeagent", name, status, namespaced=False)

    def rollout_status(self, status: dict[str, Any]) -> None:
        self._patch_status("modelrollout", self.name, status, namespaced=True)

    def _patch_status(
        self, kind: str, name: str, status: dict[str, Any], *, namespaced: bool
    ) -> None:
        where = ["-n", self.namespace] if namespaced else []
        self.kube.kubectl(
            "patch",
            kind,
            name,
            *where,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
        )

    def request(self) -> controls.Request | None:
        """The request the dashboard wrote in the annotation, if any."""
        found = self.kube.kubectl(
            "get", "mro", self.name, "-n", self.namespace, "-o", "json"
        ).stdout
        value = (json.loads(found)["metadata"].get("annotations") or {}).get(controls.ANNOTATION)
        return controls.parse(value) if value else None

    def answer(self, *, after: str | None, paused: bool, message: str) -> controls.Request:
        """Stand in for the operator: wait for a request newer than `after`, answer it."""
        deadline = time.monotonic() + UPDATE_MS / 1000
        request = self.request()
        while request is None or request.nonce == after:
            assert time.monotonic() < deadline, "the dashboard wrote no request"
            time.sleep(0.1)
            request = self.request()
        status = _rollout_status(
            phase="Paused" if paused else "Progressing", central="Progressing", wave="eu-central"
        )
        status["control"] = {
            "paused": paused,
            "lastRequest": {
                "nonce": request.nonce,
                "action": request.action.value,
                "result": "Applied",
                "message": message,
            },
        }
        self.rollout_status(status)
        return request

    def paused(self) -> bool:
        return (
            self.kube.kubectl(
                "get",
                "mro",
                self.name,
                "-n",
                self.namespace,
                "-o",
                "jsonpath={.spec.strategy.paused}",
            ).stdout
            == "true"
        )

    def delete_agents(self) -> None:
        self.kube.kubectl(
            "delete", "edgeagent", *self.west, self.central, "--ignore-not-found", "--wait=false"
        )

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@pytest.fixture
def fleet(crds: clusters.DevCluster, namespace: str) -> Iterator[Fleet]:
    found = Fleet(crds, namespace)
    found.create()
    yield found
    found.delete_agents()


@contextlib.contextmanager
def _dashboard(kube: clusters.DevCluster, *args: str) -> Iterator[str]:
    """`edgewave dashboard --port 0 ARGS` running; its URL (from its first line)."""
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "EDGEWAVE_KUBECONFIG")}
    env["KUBECONFIG"] = str(kube.kubeconfig)
    command = (
        [str(EDGEWAVE)]
        if EDGEWAVE.is_file()
        else [sys.executable, "-c", "from edgewave_operator.cli import main; main()"]
    )
    with subprocess.Popen(
        [*command, "dashboard", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    ) as process:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], START_SECONDS)
        line = process.stdout.readline() if ready else ""
        try:
            if not line.startswith("Edgewave dashboard on "):
                raise AssertionError(f"the dashboard did not start: {line!r}")
            yield line.split()[3]
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            try:
                _, errors = process.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                _, errors = process.communicate(timeout=10)
    assert process.returncode == 0, errors


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"no browser at {CHROMIUM}: run `make browser` (installs Debian's chromium) "
            "or set EDGEWAVE_CHROMIUM"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        found = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield found
        found.close()


@contextlib.contextmanager
def _page(browser: Any, url: str) -> Iterator[tuple[Any, list[str]]]:
    """A page at `url`, and the JavaScript errors it logs."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    try:
        yield page, errors
    finally:
        context.close()


def _screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def _wait_text(page: Any, selector: str, text: str) -> None:
    """Until the element at `selector` contains `text` (bounded by UPDATE_MS)."""
    page.wait_for_function(
        "([selector, text]) => { const e = document.querySelector(selector);"
        " return !!e && e.textContent.includes(text); }",
        arg=[selector, text],
        timeout=UPDATE_MS,
    )


def _cell(page: Any, wave: str, region: str) -> str:
    """The text of the grid cell of `wave` x `region`."""
    text: str = page.evaluate(
        """([wave, region]) => {
            const table = document.getElementById("grid");
            const heads = [...table.tHead.rows[0].cells].map((c) => c.textContent);
            const row = [...table.tBodies[0].rows].find((r) => r.cells[0].textContent === wave);
            return row ? row.cells[heads.indexOf(region)].textContent : "";
        }""",
        [wave, region],
    )
    return text


def test_the_page_shows_waves_and_agents_and_follows_changes_without_a_reload(
    crds: clusters.DevCluster, fleet: Fleet, browser: Any
) -> None:
    with _dashboard(crds) as url, _page(browser, f"{url}#{fleet.key}") as (page, errors):
        _wait_text(page, "#detail-title", f"{fleet.key}: classifier 1.0.0")
        _wait_text(page, "#grid", fleet.central)
        assert page.locator("#grid thead th").all_text_contents() == [
            "Wave",
            "eu-west",
            "eu-central",
        ]
        west = _cell(page, "eu-west", "eu-west")
        assert fleet.west[0] in west
        assert fleet.west[1] in west
        assert "Active 1.0.0" in west
        assert "Standby 0.9.0" in west
        assert "Active 0.9.0" in _cell(page, "eu-central", "eu-central")
        waves = page.locator("#waves tbody tr").all_text_contents()
        assert "eu-west" in waves[0]
        assert "2/2" in waves[0]
        assert "31" in waves[0]
        assert "2.5 ms" in waves[0]
        assert "0.001" in waves[0]
        assert "passed" in waves[0]
        assert "eu-central (current)" in waves[1]
        _wait_text(page, "#events", "WavePassed")
        assert page.locator("#actions button").count() == 0
        assert page.get_by_role("button").count() == 0
        _screenshot(page, "dashboard-progressing.png")

        # Marks this document: a reload would lose it.
        page.evaluate("window.edgewaveTestMark = 'same document'")
        started = time.monotonic()
        fleet.agent_status(
            fleet.central,
            _agent_status(_held("1.0.0", "Active", p95=3.1), _held("0.9.0", "Standby")),
        )
        page.wait_for_function(
            """([name]) => [...document.querySelectorAll("#grid li")].some(
                (li) => li.textContent.includes(name)
                    && li.textContent.includes("Active 1.0.0"))""",
            arg=[fleet.central],
            timeout=UPDATE_MS,
        )
        # A figure for the notes, not an assertion: kubectl patch -> watch -> SSE -> DOM.
        print(f"page showed the agent's new state {time.monotonic() - started:.2f}s after patching")
        fleet.rollout_status(
            _rollout_status(phase="Succeeded", central="Succeeded", wave="eu-central")
        )
        _wait_text(page, "#detail-summary", "Succeeded")
        _wait_text(page, "#rollouts tbody tr.selected", "Ready True")
        _wait_text(page, "#live", f"{fleet.key}: Succeeded")
        assert "Succeeded" in page.locator("#waves tbody tr").nth(1).text_content()
        assert page.evaluate("window.edgewaveTestMark") == "same document"
        _screenshot(page, "dashboard.png")
        assert errors == []

        # A POST from outside the page is refused with one line (read-only).
        host = url.removeprefix("http://").rstrip("/")
        request = urllib.request.Request(
            f"{url}api/rollouts/{fleet.namespace}/{fleet.name}/pause",
            method="POST",
            headers={"Origin": f"http://{host}"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403
        assert refused.value.read().decode() == (
            "the dashboard is read-only: start it with --allow-actions to enable actions\n"
        )
    assert not fleet.paused()


def test_with_allow_actions_the_pause_button_pauses_the_rollout(
    crds: clusters.DevCluster, fleet: Fleet, browser: Any
) -> None:
    with (
        _dashboard(crds, "--allow-actions") as url,
        _page(browser, f"{url}#{fleet.key}") as (page, errors),
    ):
        pause = page.get_by_role("button", name=f"Pause rollout {fleet.key}")
        pause.wait_for(timeout=UPDATE_MS)
        assert fleet.request() is None
        pause.click()
        # The button writes a request for the operator (no operator runs here: the test
        # answers it in status.control as the operator does), never the spec.
        paused = fleet.answer(after=None, paused=True, message="paused before the next batch")
        assert (paused.action, paused.generation) == (controls.Action.PAUSE, 1)
        _wait_text(
            page,
            "#action-result",
            f"rollout {fleet.key}: paused before the next batch (phase Progressing -> Paused)",
        )
        assert not fleet.paused()
        # The watch brings the answered status back: the page now offers Resume.
        resume = page.get_by_role("button", name=f"Resume rollout {fleet.key}")
        resume.wait_for(timeout=UPDATE_MS)
        _wait_text(page, "#detail-summary", "Paused")
        _screenshot(page, "dashboard-actions.png")
        # Keyboard focus survives the redraws that live updates cause.
        resume.focus()
        fleet.agent_status(fleet.central, _agent_status(_held("0.9.0", "Active"), ready=False))
        _wait_text(page, "#agents", "NotReady")
        assert page.evaluate("document.activeElement.textContent") == "Resume"
        resume.click()
        resumed = fleet.answer(after=paused.nonce, paused=False, message="resumed")
        assert resumed.action is controls.Action.RESUME
        _wait_text(page, "#action-result", f"rollout {fleet.key}: resumed (phase Paused -> ")
        assert not fleet.paused()
        assert errors == []


def test_an_unreachable_api_server_is_one_line_and_exit_code_1(
    edgewave: Callable[..., subprocess.CompletedProcess[str]],
    crds: clusters.DevCluster,
    tmp_path: Path,
) -> None:
    config = yaml.safe_load(crds.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kubeyaml.dump(config))
    result = edgewave("dashboard", "--port", "0", kubeconfig=kubeconfig)
    assert (result.returncode, result.stdout, result.stderr.count("\n")) == (1, "", 1)
    assert "https://127.0.0.1:1" in result.stderr


def test_actions_off_loopback_are_refused_before_serving(
    edgewave: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = edgewave("dashboard", "--address", "0.0.0.0", "--allow-actions")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "error: --allow-actions is only allowed on a loopback address, not 0.0.0.0: "
        "anyone who can load the page could act; use an SSH tunnel instead\n"
    )
