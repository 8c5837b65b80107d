"""The GitHub Action (action.yml and scripts/action/) and the release it installs from.

The install script is run against a release served on loopback, laid out by scripts/dist.py as
the release workflow lays it out: it installs the archive whose SHA-256 matches and refuses one
that does not. The wait script is run with a `deckhand` in front of it that exits as `deckhand
wait` exits (that command's own behaviour is tested against the emulator in tests/integration):
the job's exit status, summary and output follow it. The names the installers look for (the
action, `cargo binstall`) are the names dist.py writes, for the targets the release builds."""

import functools
import http.server
import os
import re
import subprocess
import sys
import tempfile
import threading
import tomllib
import unittest
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import dist  # noqa: E402

INSTALL = ROOT / "scripts" / "action" / "install.sh"
WAIT = ROOT / "scripts" / "action" / "wait.sh"
VERSION = "1.2.3"


def action():
    return yaml.safe_load((ROOT / "action.yml").read_text())


def release_targets():
    """The targets the release workflow builds: make dist's and the macOS job's."""
    makefile = (ROOT / "Makefile").read_text()
    linux = re.search(r"^DIST_TARGETS \?= (.+)$", makefile, re.M).group(1).split()
    workflow = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    others = re.findall(r"scripts/dist\.py --tag \"\$TAG\" (\S+)", workflow)
    return set(linux) | set(others)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Served:
    """A directory served over HTTP on a free loopback port."""

    def __init__(self, directory):
        handler = functools.partial(Quiet, directory=str(directory))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Install(unittest.TestCase):
    def setUp(self):
        self.work = Path(tempfile.mkdtemp())
        self.release = self.work / "release"
        self.release.mkdir()
        binary = self.work / "deckhand"
        binary.write_text('#!/bin/sh\necho "deckhand 1.2.3"\n')
        binary.chmod(0o755)
        dist.pack(binary, VERSION, "x86_64-unknown-linux-musl", self.release)
        self.served = Served(self.release)
        self.addCleanup(self.served.close)
        (self.work / "runner").mkdir()
        self.path_file = self.work / "github_path"
        self.path_file.write_text("")

    def install(self, **env):
        values = {
            "PATH": os.environ["PATH"],
            "RUNNER_OS": "Linux",
            "RUNNER_ARCH": "X64",
            "RUNNER_TEMP": str(self.work / "runner"),
            "GITHUB_PATH": str(self.path_file),
            "DECKHAND_VERSION": f"v{VERSION}",
            "DECKHAND_REPOSITORY": "unused/when-a-release-url-is-given",
            "DECKHAND_RELEASE_URL": self.served.url,
        }
        values.update(env)
        return subprocess.run([str(INSTALL)], env=values, capture_output=True, text=True)

    def installed(self):
        return self.work / "runner" / f"deckhand-v{VERSION}" / "bin" / "deckhand"

    def test_installs_the_archive_its_checksum_vouches_for_and_puts_it_on_the_path(self):
        result = self.install()
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(self.path_file.read_text().strip(), str(self.installed().parent))
        run = subprocess.run([str(self.installed())], capture_output=True, text=True)
        self.assertEqual(run.stdout.strip(), "deckhand 1.2.3")

    def test_refuses_an_archive_whose_checksum_differs_and_installs_nothing(self):
        archive = self.release / f"deckhand-{VERSION}-x86_64-unknown-linux-musl.tar.gz"
        archive.write_bytes(archive.read_bytes() + b"\0")
        result = self.install()
        self.assertEqual(result.returncode, 1)
        self.assertIn("the release says", result.stdout)
        self.assertFalse(self.installed().exists())
        self.assertEqual(self.path_file.read_text(), "")

    def test_refuses_a_checksum_made_for_another_file(self):
        sums = self.release / f"deckhand-{VERSION}-x86_64-unknown-linux-musl.tar.gz.sha256"
        digest = sums.read_text().split()[0]
        sums.write_text(f"{digest}  deckhand-{VERSION}-aarch64-apple-darwin.tar.gz\n")
        result = self.install()
        self.assertEqual(result.returncode, 1)
        self.assertIn("not deckhand-1.2.3-x86_64-unknown-linux-musl.tar.gz", result.stdout)
        self.assertFalse(self.installed().exists())

    def test_names_what_it_cannot_install(self):
        cases = [
            ({"RUNNER_OS": "Windows"}, "no release build of deckhand for Windows X64"),
            ({"RUNNER_OS": "macOS", "RUNNER_ARCH": "X64"}, "no release build of deckhand for macOS X64"),
            ({"DECKHAND_VERSION": "3d3c42e5aac5ba805825da76410c181273ba90b1"}, "is not a release tag"),
            ({"DECKHAND_VERSION": "v9.9.9"}, "could not download"),
        ]
        for env, message in cases:
            with self.subTest(env=env):
                result = self.install(**env)
                self.assertEqual(result.returncode, 1)
                self.assertIn(message, result.stdout)
                self.assertFalse(self.installed().exists())

    def test_every_runner_it_serves_is_a_target_the_release_builds(self):
        served = set(re.findall(r"\) target=(\S+) ;;", INSTALL.read_text()))
        self.assertEqual(served, release_targets())


class Wait(unittest.TestCase):
    def setUp(self):
        self.work = Path(tempfile.mkdtemp())
        self.bin = self.work / "bin"
        self.bin.mkdir()
        self.calls = self.work / "calls"
        self.summary = self.work / "summary"
        self.output = self.work / "output"

    def command(self, name, status, printed):
        """A command on PATH that records its arguments, prints and exits with a status."""
        path = self.bin / name
        path.write_text(
            f'#!/bin/sh\necho "{name} $*" >> "{self.calls}"\nprintf "%s\\n" "{printed}"\nexit {status}\n'
        )
        path.chmod(0o755)

    def wait(self, **env):
        values = {
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_OUTPUT": str(self.output),
            "DECKHAND_SERVICE": "prod/web",
            "DECKHAND_DIGEST": "sha256:" + "a" * 64,
            "DECKHAND_TIMEOUT": "15m",
            "DECKHAND_TABLE_INPUT": "deckhand-prod",
            "DECKHAND_STACK": "",
            "DECKHAND_REGION": "",
        }
        values.update(env)
        return subprocess.run([str(WAIT)], env=values, capture_output=True, text=True)

    def test_the_job_fails_as_deckhand_wait_does_and_the_summary_says_why(self):
        cases = [
            (0, "deployed"),
            (1, "not deployed: failed, rolled back or held"),
            (2, "not known in time (timeout 15m)"),
        ]
        for status, headline in cases:
            with self.subTest(status=status):
                for path in (self.calls, self.summary, self.output):
                    path.unlink(missing_ok=True)
                self.command("deckhand", status, f"prod/web: outcome {status}")
                result = self.wait()
                self.assertEqual(result.returncode, status)
                self.assertEqual(
                    self.calls.read_text().strip(),
                    "deckhand --table deckhand-prod wait prod/web --digest sha256:" + "a" * 64 + " --timeout 15m",
                )
                summary = self.summary.read_text()
                self.assertIn(f"### deckhand: `prod/web` {headline}", summary)
                self.assertIn(f"prod/web: outcome {status}", summary)
                self.assertIn(f"exit-status={status}", self.output.read_text())
                self.assertEqual("::error" in result.stdout, status != 0)

    def test_what_deckhand_prints_is_not_read_as_workflow_commands(self):
        self.command("deckhand", 1, "::add-mask::nothing")
        result = self.wait()
        lines = result.stdout.splitlines()
        stop = next(i for i, line in enumerate(lines) if line.startswith("::stop-commands::"))
        token = lines[stop].removeprefix("::stop-commands::")
        printed = lines.index("::add-mask::nothing")
        self.assertLess(stop, printed)
        self.assertLess(printed, lines.index(f"::{token}::"))

    def test_the_table_is_read_from_the_stacks_outputs_when_only_the_stack_is_given(self):
        self.command("aws", 0, "deckhand-Table-1X2Y3Z")
        self.command("deckhand", 0, "prod/web: deployed")
        result = self.wait(DECKHAND_TABLE_INPUT="", DECKHAND_STACK="deckhand", DECKHAND_REGION="eu-west-1")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        calls = self.calls.read_text().splitlines()
        self.assertTrue(calls[0].startswith("aws cloudformation describe-stacks --stack-name deckhand "))
        self.assertTrue(calls[1].startswith("deckhand --table deckhand-Table-1X2Y3Z wait prod/web"))

    def test_missing_inputs_are_named_and_nothing_runs(self):
        self.command("deckhand", 0, "unused")
        cases = [
            ({"DECKHAND_TABLE_INPUT": ""}, "give input table"),
            ({"DECKHAND_SERVICE": ""}, "input service is empty"),
            ({"DECKHAND_DIGEST": ""}, "input digest is empty"),
        ]
        for env, message in cases:
            with self.subTest(env=env):
                result = self.wait(**env)
                self.assertEqual(result.returncode, 1)
                self.assertIn(message, result.stdout)
                self.assertFalse(self.calls.exists())


class ActionMetadata(unittest.TestCase):
    def test_every_input_the_steps_use_is_declared_and_every_variable_the_scripts_read_is_set(self):
        metadata = action()
        steps = metadata["runs"]["steps"]
        used = set()
        for step in steps:
            for value in step.get("env", {}).values():
                used |= set(re.findall(r"inputs\.([a-z-]+)", value))
        self.assertEqual(used, set(metadata["inputs"]))
        for step in steps:
            script = ROOT / re.search(r"\$GITHUB_ACTION_PATH/(\S+?)\"", step["run"]).group(1)
            with self.subTest(script=script.name):
                self.assertTrue(os.access(script, os.X_OK))
                read = set(re.findall(r"\$\{?(DECKHAND_[A-Z_]+)", script.read_text()))
                self.assertLessEqual(read - {"DECKHAND_RELEASE_URL"}, set(step["env"]))


class ReleaseNames(unittest.TestCase):
    def test_cargo_binstall_looks_for_the_archives_the_release_attaches(self):
        cli = tomllib.loads((ROOT / "cli" / "Cargo.toml").read_text())
        binstall = cli["package"]["metadata"]["binstall"]
        self.assertEqual(binstall["pkg-fmt"], "tgz")
        for target in release_targets():
            with self.subTest(target=target):
                fill = {"{ version }": VERSION, "{ target }": target, "{ bin }": "deckhand", "{ binary-ext }": ""}
                url, folder = binstall["pkg-url"], binstall["bin-dir"]
                for key, value in fill.items():
                    url, folder = url.replace(key, value), folder.replace(key, value)
                self.assertTrue(url.startswith("{ repo }/releases/download/v1.2.3/"))
                self.assertEqual(url.rsplit("/", 1)[1], f"{dist.archive_name(VERSION, target)}.tar.gz")
                self.assertEqual(folder, f"{dist.archive_name(VERSION, target)}/deckhand")

    def test_the_release_refuses_a_tag_that_is_not_the_clis_version(self):
        result = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "dist.py"), "--tag", "v0.0.0-not-it", "x86_64-unknown-linux-musl"],
            capture_output=True,
            text=True,
        )
        self.assertEqual(result.returncode, 1)
        self.assertIn("does not name deckhand-cli", result.stderr)


if __name__ == "__main__":
    unittest.main()
