"""Tests for mock_openai.py (stdlib only).

Run: python3 -m unittest tests/mock_provider/test_mock_openai.py -v
"""

import base64
import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "sk-test-key"


def chat_lines(n, broken_at=None):
    """A JSONL training file of n chat examples; example broken_at lacks a role."""
    lines = []
    for i in range(1, n + 1):
        user = {"content": f"question {i}"} if i == broken_at else \
            {"role": "user", "content": f"question {i}"}
        lines.append(json.dumps({"messages": [{"role": "system", "content": "be brief"}, user,
                                              {"role": "assistant", "content": f"answer {i}"}]}))
    return ("\n".join(lines) + "\n").encode()


def dpo_lines(n):
    """A JSONL preference (DPO) file of n examples."""
    return ("\n".join(json.dumps({
        "input": {"messages": [{"role": "user", "content": f"q{i}"}]},
        "preferred_output": [{"role": "assistant", "content": "good"}],
        "non_preferred_output": [{"role": "assistant", "content": "bad"}]})
        for i in range(n)) + "\n").encode()


def multipart(fields, boundary="----mockboundary7MA4YWxk"):
    """Encode {name: str | (filename, bytes)} as multipart/form-data."""
    out = b""
    for name, value in fields.items():
        out += f"--{boundary}\r\n".encode()
        if isinstance(value, tuple):
            out += (f'Content-Disposition: form-data; name="{name}"; filename="{value[0]}"\r\n'
                    "Content-Type: application/octet-stream\r\n\r\n").encode() + value[1]
        else:
            out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}'.encode()
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


class MockServerTest(unittest.TestCase):
    """Starts one mock server for all tests; every test starts from /_mock/reset."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        port_file = os.path.join(cls.tmp.name, "port")
        cls.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "mock_openai.py"), "--port", "0",
             "--port-file", port_file, "--state-dir", os.path.join(cls.tmp.name, "state"),
             "--log", os.path.join(cls.tmp.name, "log")],
            stdout=subprocess.PIPE, text=True)
        line = cls.proc.stdout.readline()
        cls.port = int(re.match(r"listening on (\d+)", line).group(1))
        with open(port_file) as fh:
            assert int(fh.read()) == cls.port

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(10)
        cls.proc.stdout.close()
        cls.tmp.cleanup()

    def setUp(self):
        self.control("POST", "/_mock/reset")

    # --- helpers -----------------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, key=KEY, timeout=10):
        """One request on a fresh connection: (status, headers, decoded body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = dict(headers or {})
            if key is not None:
                headers["Authorization"] = f"Bearer {key}"
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.getheader("Content-Type") == "application/json":
                data = json.loads(data)
            return resp.status, resp, data
        finally:
            conn.close()

    def api(self, method, path, body=None, expect=200):
        """An authenticated API call that must answer 'expect'; returns the JSON."""
        status, _, data = self.request(method, path, body)
        self.assertEqual(status, expect, data)
        return data

    def raw_get(self, path):
        """An authenticated GET returning (response, undecoded body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {KEY}"})
            resp = conn.getresponse()
            return resp, resp.read()
        finally:
            conn.close()

    def control(self, method, path, body=None):
        """A control-API call; returns its JSON."""
        status, _, data = self.request(method, path, body, key=None)
        self.assertEqual(status, 200, data)
        return data

    def upload(self, content, filename="train.jsonl", purpose="fine-tune"):
        """Upload a file through POST /v1/files; returns its id."""
        body, ctype = multipart({"purpose": purpose, "file": (filename, content)})
        status, _, data = self.request("POST", "/v1/files", body, {"Content-Type": ctype})
        self.assertEqual(status, 200, data)
        return data["id"]

    def create_job(self, **fields):
        """Create a job on a fresh valid training file unless one is given."""
        fields.setdefault("model", "gpt-4o-mini")
        if "training_file" not in fields:
            fields["training_file"] = self.upload(chat_lines(12))
        return self.api("POST", "/v1/fine_tuning/jobs", fields)

    def advance(self, job_id, to):
        """Jump a job to a status through the control API."""
        return self.control("POST", f"/_mock/jobs/{job_id}/advance", {"to": to})

    def violations(self):
        """The protocol violations recorded so far."""
        return self.control("GET", "/_mock/state")["violations"]

    def add_fault(self, action, method=None, path_regex=None, times=1):
        """Install one fault rule."""
        match = {k: v for k, v in (("method", method), ("path_regex", path_regex)) if v}
        self.control("POST", "/_mock/faults", [{"match": match, "times": times, "action": action}])

    # --- auth and HTTP ------------------------------------------------------------------
    def test_auth_missing_and_wrong_key(self):
        status, _, data = self.request("GET", "/v1/files", key=None)
        self.assertEqual(status, 401)
        self.assertIsNone(data["error"]["code"])
        self.assertIn("didn't provide an API key", data["error"]["message"])
        status, _, data = self.request("GET", "/v1/files", key="bogus")
        self.assertEqual((status, data["error"]["code"]), (401, "invalid_api_key"))
        self.control("POST", "/_mock/config", {"keys": ["sk-only"]})
        self.assertEqual(self.request("GET", "/v1/files")[0], 401)
        self.assertEqual(self.request("GET", "/v1/files", key="sk-only")[0], 200)
        self.assertEqual(len(self.violations()), 1)  # only the missing header
        with open(os.path.join(self.tmp.name, "log")) as fh:
            self.assertNotIn(KEY, fh.read())

    def test_common_headers(self):
        _, resp, _ = self.request("GET", "/v1/files")
        self.assertRegex(resp.getheader("x-request-id"), r"^req_[0-9a-f]{32}$")
        self.assertEqual(resp.getheader("openai-version"), "2020-10-01")
        self.assertTrue(resp.getheader("openai-processing-ms").isdigit())
        for name in ("limit-requests", "remaining-requests", "reset-requests",
                     "limit-tokens", "remaining-tokens", "reset-tokens"):
            self.assertIsNotNone(resp.getheader("x-ratelimit-" + name), name)

    def test_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        auth = {"Authorization": f"Bearer {KEY}"}
        conn.request("GET", "/v1/files", headers=auth)
        conn.getresponse().read()
        sock = conn.sock
        for _ in range(3):
            conn.request("GET", "/v1/fine_tuning/jobs", headers=auth)
            self.assertEqual(conn.getresponse().read()[:1], b"{")
        self.assertIs(conn.sock, sock)
        conn.close()

    def test_expect_100_continue_and_chunked_upload(self):
        body, ctype = multipart({"purpose": "fine-tune", "file": ("t.jsonl", chat_lines(10))})
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 100]), body[i:i + 100])
                           for i in range(0, len(body), 100)) + b"0\r\n\r\n"
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall((f"POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                          f"Content-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n"
                          "Expect: 100-continue\r\n\r\n").encode())
            self.assertTrue(sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n"))
            sock.sendall(chunked)
            reply = b""
            while b'"status"' not in reply:
                reply += sock.recv(65536)
        self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply[:200])
        self.assertIn(b'"bytes": %d' % len(chat_lines(10)), reply)

    def test_unknown_url_is_violation(self):
        status, _, data = self.request("GET", "/v1/fine_tuning/job")
        self.assertEqual(status, 404)
        self.assertEqual(data["error"]["message"], "Invalid URL (GET /v1/fine_tuning/job)")
        self.assertEqual(len(self.violations()), 1)

    # --- files ----------------------------------------------------------------------------
    def test_files_crud(self):
        content = chat_lines(10)
        file_id = self.upload(content)
        meta = self.api("GET", f"/v1/files/{file_id}")
        self.assertEqual((meta["object"], meta["bytes"], meta["purpose"], meta["status"]),
                         ("file", len(content), "fine-tune", "processed"))
        status, _, data = self.request("GET", f"/v1/files/{file_id}/content")
        self.assertEqual(data, content)
        listing = self.api("GET", "/v1/files?purpose=fine-tune")
        self.assertEqual([f["id"] for f in listing["data"]], [file_id])
        self.assertEqual(self.api("DELETE", f"/v1/files/{file_id}")["deleted"], True)
        status, _, data = self.request("GET", f"/v1/files/{file_id}")
        self.assertEqual(status, 404)
        self.assertEqual(data["error"]["message"], f"No such File object: {file_id}")
        self.assertEqual(self.violations(), [])

    def test_file_upload_violations(self):
        cases = [
            multipart({"file": ("t.jsonl", b"{}\n")}),
            multipart({"purpose": "fun", "file": ("t.jsonl", b"{}\n")}),
            multipart({"purpose": "fine-tune", "file": ("t.csv", b"a,b\n")}),
            multipart({"purpose": "fine-tune", "file": ("t.jsonl", b"{}\n"), "extra": "1"}),
            (b"--b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune",
             "multipart/form-data; boundary=b"),
            (b"purpose=fine-tune", "application/x-www-form-urlencoded"),
        ]
        for body, ctype in cases:
            status, _, data = self.request("POST", "/v1/files", body, {"Content-Type": ctype})
            self.assertEqual(status, 400, (body, data))
            self.assertEqual(data["error"]["type"], "invalid_request_error")
        self.assertEqual(len(self.violations()), len(cases))

    def test_quoted_filename_and_malformed_content_still_uploads(self):
        body = (b'--xyz\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
                b'--xyz\r\nContent-Disposition: form-data; name="file"; '
                b'filename="my \\"odd\\"; name.jsonl"\r\n\r\nnot json at all\r\n--xyz--\r\n')
        status, _, data = self.request("POST", "/v1/files", body,
                                       {"Content-Type": 'multipart/form-data; boundary="xyz"'})
        self.assertEqual(status, 200, data)
        self.assertEqual(data["filename"], 'my "odd"; name.jsonl')
        self.assertEqual(data["status"], "processed")

    def test_uploads_api(self):
        content = chat_lines(20)
        upload = self.api("POST", "/v1/uploads", {"filename": "big.jsonl", "purpose": "fine-tune",
                                                  "bytes": len(content), "mime_type": "text/jsonl"})
        self.assertEqual(upload["status"], "pending")
        part_ids = []
        for piece in (content[:500], content[500:]):
            body, ctype = multipart({"data": ("blob", piece)})
            status, _, part = self.request("POST", f"/v1/uploads/{upload['id']}/parts", body,
                                           {"Content-Type": ctype})
            self.assertEqual((status, part["object"]), (200, "upload.part"))
            part_ids.append(part["id"])
        bad = self.request("POST", f"/v1/uploads/{upload['id']}/complete",
                           {"part_ids": part_ids[:1]})
        self.assertEqual(bad[0], 400)
        self.assertIn("does not match", bad[2]["error"]["message"])
        done = self.api("POST", f"/v1/uploads/{upload['id']}/complete",
                        {"part_ids": part_ids, "md5": hashlib.md5(content).hexdigest()})
        self.assertEqual(done["status"], "completed")
        status, _, data = self.request("GET", f"/v1/files/{done['file']['id']}/content")
        self.assertEqual(data, content)
        self.assertEqual(self.violations(), [])

    # --- jobs -----------------------------------------------------------------------------
    def test_job_progresses_to_success(self):
        self.control("POST", "/_mock/config", {"speed": 20})
        job = self.create_job(suffix="demo", metadata={"pg_job": "u-1"},
                              validation_file=self.upload(chat_lines(5), "valid.jsonl"))
        self.assertEqual((job["status"], job["fine_tuned_model"], job["trained_tokens"],
                          job["result_files"], job["error"]),
                         ("validating_files", None, None, [], None))
        self.assertEqual(job["model"], "gpt-4o-mini-2024-07-18")
        seen = set()
        deadline = time.time() + 10
        while job["status"] != "succeeded" and time.time() < deadline:
            time.sleep(0.02)
            job = self.api("GET", f"/v1/fine_tuning/jobs/{job['id']}")
            seen.add(job["status"])
        self.assertEqual(job["status"], "succeeded")
        self.assertTrue({"queued", "running"} <= seen, seen)
        self.assertRegex(job["fine_tuned_model"],
                         r"^ft:gpt-4o-mini-2024-07-18:mock-org:demo:[A-Za-z0-9]{8}$")
        self.assertEqual(job["hyperparameters"]["n_epochs"], 8)  # cookbook rule for 12 examples
        state = self.control("GET", "/_mock/state")
        tokens = state["jobs"][0]["_mock"]["example_tokens"]
        self.assertEqual(job["trained_tokens"], 8 * sum(tokens))
        self.assertIsInstance(job["finished_at"], int)

        status, _, csv = self.request("GET", f"/v1/files/{job['result_files'][0]}/content")
        rows = base64.b64decode(csv).decode().splitlines()
        self.assertEqual(rows[0], "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy")
        self.assertEqual(len(rows), 1 + 96)
        self.assertTrue(rows[1].endswith(",,"))

        checkpoints = self.api("GET", f"/v1/fine_tuning/jobs/{job['id']}/checkpoints")
        steps = [c["step_number"] for c in checkpoints["data"]]
        self.assertEqual(steps, [96, 84, 72])
        self.assertEqual(checkpoints["data"][0]["fine_tuned_model_checkpoint"],
                         job["fine_tuned_model"])
        self.assertEqual(checkpoints["first_id"], checkpoints["data"][0]["id"])

        events, after = [], None
        while True:
            page = self.api("GET", f"/v1/fine_tuning/jobs/{job['id']}/events?limit=7"
                            + (f"&after={after}" if after else ""))
            events += page["data"]
            if not page["has_more"]:
                break
            after = page["data"][-1]["id"]
        self.assertEqual(events[0]["message"], "The job has successfully completed")
        self.assertEqual(events[-1]["message"], f"Created fine-tuning job: {job['id']}")
        self.assertEqual(len({e["id"] for e in events}), len(events))
        default_page = self.api("GET", f"/v1/fine_tuning/jobs/{job['id']}/events")
        self.assertEqual(len(default_page["data"]), 20)
        metrics = [e["data"] for e in events if e["type"] == "metrics"]
        self.assertEqual(len(metrics), 96)
        self.assertTrue(any("valid_loss" in m for m in metrics))
        self.assertTrue(any("valid_loss" not in m for m in metrics))
        self.assertIn("full_valid_loss", metrics[0])
        self.assertTrue(any(e["message"].startswith("New fine-tuned model created: ft:")
                            for e in events))
        self.assertEqual(self.violations(), [])

    def test_model_name_without_suffix(self):
        job = self.advance(self.create_job()["id"], "succeeded")
        self.assertRegex(job["fine_tuned_model"], r"^ft:gpt-4o-mini-2024-07-18:mock-org::\w{8}$")

    def test_list_jobs_by_metadata_and_paging(self):
        train = self.upload(chat_lines(10))
        ids = [self.create_job(training_file=train, metadata={"pg_job": f"u{i}", "env": "t"})["id"]
               for i in range(5)]
        self.create_job(training_file=train)
        found = self.api("GET", "/v1/fine_tuning/jobs?metadata[pg_job]=u3")
        self.assertEqual([j["id"] for j in found["data"]], [ids[3]])
        self.assertEqual(found["data"][0]["metadata"], {"pg_job": "u3", "env": "t"})
        self.assertNotIn("first_id", found)
        page = self.api("GET", "/v1/fine_tuning/jobs?metadata[env]=t&limit=3")
        self.assertEqual([j["id"] for j in page["data"]], ids[::-1][:3])
        self.assertTrue(page["has_more"])
        rest = self.api("GET", f"/v1/fine_tuning/jobs?metadata[env]=t&limit=3"
                               f"&after={page['data'][-1]['id']}")
        self.assertEqual([j["id"] for j in rest["data"]], ids[::-1][3:])
        self.assertFalse(rest["has_more"])
        self.assertEqual(len(self.api("GET", "/v1/fine_tuning/jobs?metadata=null")["data"]), 1)
        self.assertEqual(self.violations(), [])

    def test_create_job_validation(self):
        train = self.upload(chat_lines(10))
        bad_bodies = [
            ({"model": "gpt-4o-mini", "training_file": train, "foo": 1}, "foo"),
            ({"training_file": train}, "model"),
            ({"model": "gpt-4o-mini", "training_file": train, "seed": "1"}, "seed"),
            ({"model": "gpt-4o-mini", "training_file": train, "suffix": "x" * 65}, "suffix"),
            ({"model": "gpt-4o-mini", "training_file": train,
              "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
            ({"model": "gpt-4o-mini", "training_file": train,
              "method": {"type": "supervised",
                         "supervised": {"hyperparameters": {"n_epochs": 3.0}}}},
             "method.supervised.hyperparameters.n_epochs"),
            ({"model": "gpt-4o-mini", "training_file": train,
              "method": {"type": "supervised", "supervised": {"hyperparameters": {"beta": 1}}}},
             "method.supervised.hyperparameters.beta"),
        ]
        for body, param in bad_bodies:
            status, _, data = self.request("POST", "/v1/fine_tuning/jobs", body)
            self.assertEqual(status, 400, body)
            self.assertEqual(data["error"]["param"], param, data)
            self.assertEqual(set(data["error"]), {"message", "type", "param", "code"})
        status, _, data = self.request("POST", "/v1/fine_tuning/jobs", b"{not json",
                                       {"Content-Type": "application/json"})
        self.assertEqual(status, 400)
        status, _, data = self.request("POST", "/v1/fine_tuning/jobs", b"model=x",
                                       {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 400)
        self.assertEqual(len(self.violations()), len(bad_bodies) + 2)
        # Semantic errors are answered but are not protocol violations.
        for body in ({"model": "gpt-4o-mini", "training_file": "file-nope"},
                     {"model": "no-such-model", "training_file": train}):
            self.assertEqual(self.request("POST", "/v1/fine_tuning/jobs", body)[0], 400)
        status, _, data = self.request("GET", "/v1/fine_tuning/jobs/ftjob-nope")
        self.assertEqual((status, data["error"]["code"]), (404, None))
        self.assertEqual(len(self.violations()), len(bad_bodies) + 2)

    def test_bad_training_files_fail_the_job(self):
        job = self.advance(self.create_job(training_file=self.upload(chat_lines(12, 4)))["id"],
                           "succeeded")
        self.assertEqual(job["status"], "failed")
        self.assertEqual(job["error"], {"code": "invalid_training_file", "param": "training_file",
                                        "message": "Example 4, message 2 Discriminator 'role' "
                                                   "is missing in value"})
        self.assertIsNone(job["finished_at"])
        job = self.advance(self.create_job(training_file=self.upload(chat_lines(7)))["id"],
                           "succeeded")
        self.assertEqual(job["error"]["code"], "invalid_n_examples")
        self.assertIn("Training file has 7 example(s)", job["error"]["message"])
        events = self.api("GET", f"/v1/fine_tuning/jobs/{job['id']}/events")["data"]
        self.assertEqual(events[0]["level"], "error")

    def test_dpo_job(self):
        method = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 2}}}
        job = self.create_job(training_file=self.upload(dpo_lines(10)), method=method)
        self.assertIsNone(job["hyperparameters"])
        job = self.advance(job["id"], "succeeded")
        self.assertEqual(job["status"], "succeeded", job["error"])
        self.assertEqual(job["method"]["dpo"]["hyperparameters"]["beta"], 0.2)
        bad = self.advance(self.create_job(training_file=self.upload(chat_lines(10)),
                                           method=method)["id"], "succeeded")
        self.assertEqual(bad["error"]["code"], "invalid_training_file")

    def test_cancel_pause_resume(self):
        job = self.create_job()
        self.control("POST", f"/_mock/jobs/{job['id']}/config", {"speed": 0})
        self.assertEqual(self.advance(job["id"], "running")["status"], "running")
        path = f"/v1/fine_tuning/jobs/{job['id']}"
        self.assertEqual(self.api("POST", path + "/pause")["status"], "paused")
        self.assertEqual(self.api("POST", path + "/resume")["status"], "queued")
        self.assertEqual(self.advance(job["id"], "running")["status"], "running")
        self.assertEqual(self.api("POST", path + "/cancel")["status"], "cancelled")
        status, _, data = self.request("POST", path + "/cancel")
        self.assertEqual(status, 400)
        self.assertEqual(data["error"]["type"], "invalid_request_error")
        self.assertIn("cannot be cancelled", data["error"]["message"])
        self.assertEqual(self.violations(), [])

    def test_control_fail_and_unknown_status(self):
        job = self.create_job()
        jid = job["id"]
        self.control("POST", f"/_mock/jobs/{jid}/config", {"speed": 0})
        self.control("POST", f"/_mock/jobs/{jid}/unknown_status", {"status": "pausing"})
        self.assertEqual(self.api("GET", f"/v1/fine_tuning/jobs/{jid}")["status"], "pausing")
        self.control("POST", f"/_mock/jobs/{jid}/unknown_status", {"status": None})
        self.assertEqual(self.api("GET", f"/v1/fine_tuning/jobs/{jid}")["status"],
                         "validating_files")
        self.control("POST", f"/_mock/jobs/{jid}/fail", {"code": "server_error", "message": "boom"})
        job = self.api("GET", f"/v1/fine_tuning/jobs/{jid}")
        self.assertEqual((job["status"], job["error"]["code"], job["error"]["message"]),
                         ("failed", "server_error", "boom"))

    def test_quirks_and_raw_csv(self):
        self.control("POST", "/_mock/config", {"event_quirks": True, "result_csv_base64": False})
        job = self.create_job()
        self.assertEqual(job["error"], {})
        self.assertIn("user_provided_suffix", job)
        job = self.advance(job["id"], "succeeded")
        self.assertIn(b'"n_epochs": 8.0', self.raw_get(f"/v1/fine_tuning/jobs/{job['id']}")[1])
        status, _, csv = self.request("GET", f"/v1/files/{job['result_files'][0]}/content")
        self.assertTrue(csv.startswith(b"step,train_loss,"))
        events = self.api("GET", f"/v1/fine_tuning/jobs/{job['id']}/events?limit=1000")["data"]
        self.assertIn("moderation_checks", {e["type"] for e in events})
        step = next(e for e in events if e["type"] == "metrics")["data"]["step"]
        self.assertIsInstance(step, float)

    # --- faults ----------------------------------------------------------------------------
    def test_fault_429_with_retry_headers_then_normal(self):
        self.add_fault({"status": 429, "retry_after": 2, "retry_after_ms": 1500},
                       method="GET", path_regex=r"^/v1/files$", times=2)
        for _ in range(2):
            status, resp, data = self.request("GET", "/v1/files")
            self.assertEqual((status, resp.getheader("Retry-After"),
                              resp.getheader("retry-after-ms")), (429, "2", "1500"))
            self.assertEqual(data["error"]["code"], "rate_limit_exceeded")
        self.assertEqual(self.request("GET", "/v1/files")[0], 200)

    def test_fault_quota_custom_and_5xx(self):
        self.add_fault({"status": 429, "code": "insufficient_quota"})
        status, _, data = self.request("GET", "/v1/files")
        self.assertEqual((status, data["error"]["code"], data["error"]["type"]),
                         (429, "insufficient_quota", "insufficient_quota"))
        custom = {"message": "nope", "type": "invalid_request_error", "param": "x", "code": "y"}
        self.add_fault({"status": 400, "error": custom})
        self.assertEqual(self.request("GET", "/v1/files")[2], {"error": custom})
        for code in (500, 502, 503):
            self.add_fault({"status": code})
            status, resp, data = self.request("GET", "/v1/files")
            self.assertEqual(status, code)
            if code == 502:
                self.assertEqual(resp.getheader("Content-Type"), "text/html")
            else:
                self.assertEqual(data["error"]["type"], "server_error")

    def test_fault_delay_and_slow_body(self):
        self.add_fault({"delay_ms": 400})
        start = time.monotonic()
        self.assertEqual(self.request("GET", "/v1/files")[0], 200)
        self.assertGreaterEqual(time.monotonic() - start, 0.4)
        self.add_fault({"slow_body_ms": 400})
        start = time.monotonic()
        status, _, data = self.request("GET", "/v1/files")
        self.assertEqual((status, data["object"]), (200, "list"))
        self.assertGreaterEqual(time.monotonic() - start, 0.35)

    def test_fault_hang_times_out_client(self):
        self.add_fault({"hang": True})
        with self.assertRaises(TimeoutError):
            self.request("GET", "/v1/files", timeout=0.5)
        self.assertEqual(self.request("GET", "/v1/files")[0], 200)
        requests = self.control("GET", "/_mock/requests")["requests"]
        self.assertEqual(requests[0]["fault"], "hang")

    def test_fault_reset(self):
        self.add_fault({"reset": True}, method="POST")
        with self.assertRaises(ConnectionResetError):
            self.create_job(training_file="file-x")
        self.assertEqual(self.request("GET", "/v1/files")[0], 200)

    def test_fault_reset_after_processing_creates_job(self):
        train = self.upload(chat_lines(10))
        self.add_fault({"reset_after_processing": True}, method="POST",
                       path_regex=r"^/v1/fine_tuning/jobs$")
        with self.assertRaises(ConnectionResetError):
            self.create_job(training_file=train, metadata={"pg_job": "amb-1"})
        found = self.api("GET", "/v1/fine_tuning/jobs?metadata[pg_job]=amb-1")["data"]
        self.assertEqual(len(found), 1)

    def test_fault_malformed_and_truncated_json(self):
        for action in ({"malformed_json": True}, {"truncated_json": True}):
            self.add_fault(action)
            resp, raw = self.raw_get("/v1/fine_tuning/jobs")
            self.assertEqual(resp.status, 200)
            self.assertEqual(int(resp.getheader("Content-Length")), len(raw))
            with self.assertRaises(ValueError):
                json.loads(raw)

    def test_fault_rules_validated(self):
        status, _, data = self.request("POST", "/_mock/faults", [{"action": {"explode": 1}}],
                                       key=None)
        self.assertEqual(status, 400)


if __name__ == "__main__":
    unittest.main()
