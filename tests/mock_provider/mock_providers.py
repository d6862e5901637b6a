#!/usr/bin/env python3
"""Local stand-in for the fine-tuning APIs of Azure OpenAI, Together AI, Fireworks,
Mistral and Replicate, one protocol per path prefix of one server:

    /azure/openai/v1/...        Azure OpenAI v1 API (api-key header, no api-version)
    /azure/openai/...           Azure OpenAI legacy API (?api-version= required)
    /together/v1/...            Together AI
    /fireworks/v1/accounts/A/   Fireworks AI
    /mistral/v1/...             Mistral
    /replicate/v1/...           Replicate

Requests are validated against each provider's published shape (see
/work/shared/reference/providers.md section 4); a request that breaks it is answered
with that provider's error body and recorded in /_mock/state "violations".  Jobs move
through each provider's own statuses on a clock.  Faults: /_mock/faults rules as in
mock_openai.py ({"match": {"method", "path_regex"}, "times", "action": {"status": N,
"retry_after": s} | {"reset": true} | {"reset_after_processing": true}}).  Control:
/_mock/state, /_mock/config {"speed", "duration_s"}, /_mock/jobs/{id}/fail
{"code", "message"}, /_mock/jobs/{id}/config {"speed"}, /_mock/reset.  Standard library only.

    python3 mock_providers.py --port 0 --port-file F [--speed 4] [--duration 6]
"""

import argparse
import json
import os
import re
import socket
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mock_openai import parse_header_value, parse_multipart  # noqa: E402

# Each kind's statuses with their share of the job's duration, the success status,
# and what failure and cancellation look like.
PHASES = {
    "azure": [("validating_files", 0.2), ("queued", 0.1), ("running", 0.7)],
    "together": [("pending", 0.1), ("queued", 0.1), ("running", 0.6), ("uploading", 0.2)],
    "fireworks": [("JOB_STATE_CREATING", 0.1), ("JOB_STATE_PENDING", 0.1), ("JOB_STATE_RUNNING", 0.8)],
    "mistral": [("QUEUED", 0.1), ("STARTED", 0.05), ("VALIDATING", 0.1), ("VALIDATED", 0.05), ("RUNNING", 0.7)],
    "replicate": [("starting", 0.2), ("processing", 0.8)],
}
DONE = {"azure": "succeeded", "together": "completed", "fireworks": "JOB_STATE_COMPLETED",
        "mistral": "SUCCESS", "replicate": "succeeded"}
FAILED = {"azure": "failed", "together": "error", "fireworks": "JOB_STATE_FAILED",
          "mistral": "FAILED", "replicate": "failed"}
CANCELLING = {"azure": "cancelled", "together": "cancel_requested", "fireworks": "JOB_STATE_DELETING",
              "mistral": "CANCELLATION_REQUESTED", "replicate": "canceled"}
CANCELLED = {"azure": "cancelled", "together": "cancelled", "fireworks": None,
             "mistral": "CANCELLED", "replicate": "canceled"}
HTTP_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS",
                     422: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


class ApiError(Exception):
    """An error answered in the provider's own shape; violation=True records it."""

    def __init__(self, status, message, code=None, violation=False, loc=None):
        super().__init__(message)
        self.status, self.message, self.code, self.violation, self.loc = status, message, code, violation, loc


def error_body(kind, err):
    """The error document each provider sends."""
    if kind == "azure":
        return {"error": {"code": err.code or "invalidPayload", "message": err.message}}
    if kind == "together":
        return {"error": {"message": err.message, "type": "invalid_request_error", "param": None,
                          "code": err.code}}
    if kind == "fireworks":
        return {"error": {"code": err.status, "message": err.message,
                          "status": HTTP_STATUS_NAMES.get(err.status, "UNKNOWN")}}
    if kind == "mistral":
        if err.status == 422:
            return {"detail": [{"type": err.code or "value_error", "loc": err.loc or ["body"],
                                "msg": err.message, "input": None}]}
        return {"object": "error", "message": err.message, "type": err.code or "invalid_request_error",
                "param": None, "code": None}
    return {"title": err.code or "Invalid input", "detail": err.message, "status": err.status}


def iso(ts):
    """An ISO-8601 UTC time with microseconds, as Together and Replicate send."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".%06dZ" % int((ts % 1) * 1e6)


class Store:
    """Everything the server knows, behind one lock."""

    def __init__(self, speed, duration):
        self.lock = threading.RLock()
        self.defaults = {"speed": speed, "duration_s": duration}
        self.reset()

    def reset(self):
        with self.lock:
            self.config = dict(self.defaults)
            self.files, self.jobs, self.datasets = {}, {}, {}
            self.faults, self.requests, self.violations = [], [], []

    def take_fault(self, method, path):
        """The action of the first live rule matching, counting it down."""
        with self.lock:
            for rule in self.faults:
                m = rule.get("match", {})
                if rule.get("times", 1) == 0:
                    continue
                if m.get("method") and m["method"] != method:
                    continue
                if m.get("path_regex") and not re.search(m["path_regex"], path):
                    continue
                if rule.get("times", 1) > 0:
                    rule["times"] = rule.get("times", 1) - 1
                rule["hits"] = rule.get("hits", 0) + 1
                return rule["action"]
        return None

    # --- the clock -----------------------------------------------------------
    def tick(self, job):
        """Advance a job by the time passed since it was last looked at."""
        now = time.time()
        speed = job["speed"] if job["speed"] is not None else self.config["speed"]
        if job["terminal"] is None:
            job["t"] += (now - job["last"]) * speed
        job["last"] = now
        kind = job["kind"]
        if job.get("cancel_at") and job["terminal"] is None:
            job["status"] = CANCELLING[kind]
            if now - job["cancel_at"] > 0.5:
                job["terminal"] = "cancelled"
                job["status"] = CANCELLED[kind]
                job["finished"] = now
            return
        if job["terminal"]:
            return
        duration = self.config["duration_s"]
        acc = 0.0
        for status, share in PHASES[kind]:
            acc += share * duration
            if kind == "mistral" and status == "VALIDATED" and not job["started"] and job["t"] >= acc - share * duration:
                job["t"] = acc - share * duration
                job["status"] = status
                return
            if job["t"] < acc:
                if job["status"] != status:
                    job["status"] = status
                    job["history"].append((status, now))
                return
        job["status"] = DONE[kind]
        job["terminal"] = "succeeded"
        job["finished"] = now
        job["history"].append((job["status"], now))

    def new_job(self, kind, fields):
        """Register a job; fields are the kind's own."""
        now = time.time()
        job = {"kind": kind, "t": 0.0, "last": now, "created": now, "speed": None, "terminal": None,
               "status": PHASES[kind][0][0], "history": [(PHASES[kind][0][0], now)], "started": True,
               "finished": None, "error": None, "cancel_at": None, "deleted_at": None}
        job.update(fields)
        self.jobs[job["id"]] = job
        return job


# ------------------------------------------------------------------------------
# Validation helpers
# ------------------------------------------------------------------------------

def need(cond, message, status=400, code=None, loc=None):
    """Raise a protocol violation unless cond holds."""
    if not cond:
        raise ApiError(status, message, code, violation=True, loc=loc)


def check_keys(body, allowed, required, status=400):
    """Unknown or missing fields are violations."""
    for key in body:
        need(key in allowed, f"Unrecognized request argument supplied: {key}", status, "extra_forbidden", ["body", key])
    for key in required:
        need(key in body, f"Field required: {key}", status, "missing", ["body", key])


def json_body(req, status=400):
    """The JSON object body; violation unless it is one."""
    need(req["content_type"] == "application/json", "Content-Type must be application/json", status)
    try:
        body = json.loads(req["body"].decode("utf-8"))
    except ValueError:
        raise ApiError(status, "Request body is not valid JSON.", violation=True) from None
    need(isinstance(body, dict), "Request body must be a JSON object.", status)
    req["logged"] = body
    return body


def form(req, status=400):
    """The multipart fields; violation unless it is valid multipart."""
    media, params = parse_header_value(req["headers"].get("Content-Type", ""))
    need(media == "multipart/form-data" and params.get("boundary"), "Expected multipart/form-data.", status)
    try:
        parts = parse_multipart(req["body"], params["boundary"])
    except ValueError as exc:
        raise ApiError(status, f"Bad multipart body: {exc}", violation=True) from None
    fields = {p.name: p for p in parts}
    req["logged"] = {n: p.describe() for n, p in fields.items()}
    return fields


def check_jsonl(data):
    """Count JSONL lines; a bad line is a violation (the uploads here are always ours)."""
    n = 0
    for i, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if line.strip():
            try:
                json.loads(line)
            except ValueError:
                raise ApiError(400, f"Line {i} is not JSON.", violation=True) from None
            n += 1
    return n


def no_body(req):
    """Cancel-like verbs take no body."""
    need(req["body"].strip() in (b"", b"{}"), "This endpoint takes no request body.")


def number(value, name, low=None, high=None, integral=False, status=400):
    """A numeric field within bounds."""
    need(isinstance(value, (int, float)) and not isinstance(value, bool), f"{name} must be a number", status,
         "type_error", ["body", name])
    need(not integral or float(value) == int(value), f"{name} must be an integer", status, "type_error", ["body", name])
    need(low is None or value >= low, f"{name} must be >= {low}", status, "value_error", ["body", name])
    need(high is None or value <= high, f"{name} must be <= {high}", status, "value_error", ["body", name])


def not_found(what):
    return ApiError(404, f"{what} not found", "not_found")


# ------------------------------------------------------------------------------
# Azure OpenAI (v1 and legacy)
# ------------------------------------------------------------------------------

def azure_job_view(store, job):
    store.tick(job)
    out = {"id": job["id"], "object": "fine_tuning.job", "model": job["model"], "status": job["status"],
           "created_at": int(job["created"]), "finished_at": int(job["finished"]) if job["finished"] else None,
           "fine_tuned_model": None, "training_file": job["training_file"],
           "validation_file": job.get("validation_file"), "hyperparameters": job["hyperparameters"],
           "result_files": [], "trained_tokens": None, "seed": job["seed"], "estimated_finish": None,
           "organization_id": "azure-mock", "error": job["error"] or {}, "suffix": job.get("suffix")}
    if job["terminal"] == "succeeded":
        out["fine_tuned_model"] = job["model"] + ".ft-" + job["id"].replace("ftjob-", "")[:32]
        out["trained_tokens"] = 1234
    return out


def serve_azure(store, req, path):
    legacy = not path.startswith("/v1/")
    if not legacy:
        path = path[3:]
        need("api-version" not in req["query"], "The v1 API takes no api-version.")
    else:
        need(req["query"].get("api-version") in ("2024-10-21", "2025-04-01-preview", "2024-05-01-preview"),
             "Missing or unsupported api-version query parameter.", 404, "404")
    need(req["headers"].get("api-key"), "Access denied due to missing subscription key.", 401, "401")
    need(not req["headers"].get("Authorization"), "Use the api-key header, not Authorization.", 401, "401")
    m, method = None, req["method"]
    if method == "POST" and path == "/files":
        fields = form(req)
        need("file" in fields and fields.get("purpose") and fields["purpose"].text() == "fine-tune",
             "file and purpose=fine-tune are required")
        n = check_jsonl(fields["file"].data)
        fid = "file-" + uuid.uuid4().hex
        store.files[fid] = {"id": fid, "kind": "azure", "lines": n}
        return 200, {"id": fid, "object": "file", "bytes": len(fields["file"].data), "purpose": "fine-tune",
                     "filename": fields["file"].filename, "status": "processed", "created_at": int(time.time())}
    if method == "POST" and path == "/fine_tuning/jobs":
        body = json_body(req)
        check_keys(body, {"model", "training_file", "validation_file", "suffix", "seed", "method",
                          "hyperparameters", "trainingType", "integrations"}, {"model", "training_file"})
        need(body["training_file"] in store.files, "training_file not found", 400, "invalidPayload")
        if body.get("suffix") is not None:
            need(re.fullmatch(r"[A-Za-z0-9_-]{1,40}", body["suffix"]), "suffix must be 1-40 of [a-zA-Z0-9-_]")
        meth = body.get("method") or {"type": "supervised"}
        need(meth.get("type") in ("supervised", "dpo"), "method.type must be supervised or dpo")
        job = store.new_job("azure", {"id": "ftjob-" + uuid.uuid4().hex, "model": body["model"],
                                      "training_file": body["training_file"],
                                      "validation_file": body.get("validation_file"),
                                      "suffix": body.get("suffix"), "seed": body.get("seed", 42),
                                      "hyperparameters": (meth.get(meth["type"]) or {}).get("hyperparameters", {})})
        return 200, azure_job_view(store, job)
    if method == "GET" and path == "/fine_tuning/jobs":
        jobs = [azure_job_view(store, j) for j in store.jobs.values() if j["kind"] == "azure"]
        return 200, {"object": "list", "data": list(reversed(jobs)), "has_more": False}
    m = re.fullmatch(r"/fine_tuning/jobs/([^/]+)(/events|/checkpoints|/cancel)?", path)
    if m and m.group(1) in store.jobs and store.jobs[m.group(1)]["kind"] == "azure":
        job = store.jobs[m.group(1)]
        if method == "GET" and m.group(2) is None:
            return 200, azure_job_view(store, job)
        if method == "GET" and m.group(2) == "/events":
            store.tick(job)
            data = [{"id": f"ftevent-{job['id'][-6:]}-{i}", "object": "fine_tuning.job.event", "level": "info",
                     "type": "message", "message": f"Job entered {s}.", "created_at": int(t), "data": {}}
                    for i, (s, t) in enumerate(job["history"])]
            return 200, {"object": "list", "data": list(reversed(data)), "has_more": False}
        if method == "GET" and m.group(2) == "/checkpoints":
            view = azure_job_view(store, job)
            data = [{"id": "ftchkpt-" + job["id"][-8:], "object": "fine_tuning.job.checkpoint",
                     "fine_tuned_model_checkpoint": view["fine_tuned_model"], "step_number": 10,
                     "metrics": {"step": 10, "train_loss": 0.4}, "created_at": int(time.time())}] \
                if view["fine_tuned_model"] else []
            return 200, {"object": "list", "data": data, "has_more": False}
        if method == "POST" and m.group(2) == "/cancel":
            no_body(req)
            store.tick(job)
            if job["terminal"]:
                raise ApiError(400, "Job has already finished.", "jobAlreadyFinished")
            job["cancel_at"] = time.time()
            return 200, azure_job_view(store, job)
    raise ApiError(404, "Resource not found", "404", violation=m is None)


# ------------------------------------------------------------------------------
# Together AI
# ------------------------------------------------------------------------------

def together_job_view(store, job, truncated=False):
    store.tick(job)
    out = {"id": job["id"], "status": job["status"], "model": job["model"], "training_file": job["training_file"],
           "validation_file": job.get("validation_file", ""), "n_epochs": job["n_epochs"],
           "batch_size": job.get("batch_size", 8), "learning_rate": job.get("learning_rate", 1e-5),
           "suffix": job.get("suffix"), "created_at": iso(job["created"]), "updated_at": iso(job["last"]),
           "token_count": 500, "total_price": 0, "epochs_completed": 0, "queue_depth": 0,
           "training_method": job["training_method"], "model_output_name": None,
           "progress": {"estimate_available": False, "seconds_remaining": 0}}
    if job["terminal"] == "succeeded":
        out["model_output_name"] = f"mockuser/{job['model'].split('/')[-1]}-{job.get('suffix') or 'ft'}-{job['id'][-6:]}"
    if not truncated:
        out["events"] = together_events(job)
    return out


def together_events(job):
    events = [{"object": "fine-tune-event", "created_at": iso(t), "level": "info",
               "message": f"Job is {s}", "type": "job_" + s.lower(), "step": 0, "token_count": 0,
               "total_steps": 0, "param_count": 0, "wandb_url": "", "checkpoint_path": "", "model_path": "",
               "training_offset": 0, "hash": ""} for s, t in job["history"]]
    if job["error"]:
        events.append({"object": "fine-tune-event", "created_at": iso(job["finished"]), "level": "error",
                       "message": job["error"]["message"], "type": "job_error", "hash": ""})
    return events


def serve_together(store, req, path):
    auth = req["headers"].get("Authorization", "")
    need(auth.startswith("Bearer ") and len(auth) > 8, "Missing API key", 401, "invalid_api_key")
    method = req["method"]
    if method == "POST" and path == "/files/upload":
        fields = form(req)
        for name in ("file", "file_name", "purpose"):
            need(name in fields, f"multipart field {name} is required")
        need(fields["purpose"].text() == "fine-tune", "purpose must be fine-tune")
        need(set(fields) <= {"file", "file_name", "purpose", "file_type"}, "unknown multipart field")
        n = check_jsonl(fields["file"].data)
        for line in fields["file"].data.decode().splitlines():
            row = json.loads(line)
            if "messages" in row:
                for msg in row["messages"]:
                    need(set(msg) <= {"role", "content"}, "conversational lines hold only role and content")
        fid = "file-" + str(uuid.uuid4())
        store.files[fid] = {"id": fid, "kind": "together", "lines": n}
        return 200, {"id": fid, "object": "file", "filename": fields["file_name"].text(), "purpose": "fine-tune",
                     "bytes": len(fields["file"].data), "FileType": "jsonl", "LineCount": n, "Processed": True}
    if method == "POST" and path == "/fine-tunes":
        body = json_body(req)
        check_keys(body, {"training_file", "validation_file", "model", "n_epochs", "n_checkpoints", "n_evals",
                          "batch_size", "learning_rate", "suffix", "random_seed", "training_method",
                          "training_type", "wandb_name", "warmup_ratio"}, {"training_file", "model"})
        need(body["training_file"] in store.files, "training_file not found", 400, "invalid_file")
        if "n_epochs" in body:
            number(body["n_epochs"], "n_epochs", 1, 20, True)
        if "learning_rate" in body:
            number(body["learning_rate"], "learning_rate", 0, 1)
        tm = body.get("training_method", {"method": "sft"})
        need(isinstance(tm, dict) and tm.get("method") in ("sft", "dpo"), "training_method.method must be sft or dpo")
        need(set(tm) <= {"method", "dpo_beta", "train_on_inputs"}, "unknown training_method field")
        job = store.new_job("together", {"id": "ft-" + str(uuid.uuid4()), "model": body["model"],
                                         "training_file": body["training_file"],
                                         "validation_file": body.get("validation_file"),
                                         "n_epochs": body.get("n_epochs", 1), "suffix": body.get("suffix"),
                                         "training_method": tm, "seed": body.get("random_seed")})
        return 200, together_job_view(store, job)
    if method == "GET" and path == "/fine-tunes":
        return 200, {"data": [together_job_view(store, j, True) for j in store.jobs.values() if j["kind"] == "together"]}
    m = re.fullmatch(r"/fine-tunes/([^/]+)(/events|/checkpoints|/cancel)?", path)
    if m and m.group(1) in store.jobs:
        job = store.jobs[m.group(1)]
        if method == "GET" and m.group(2) is None:
            return 200, together_job_view(store, job)
        if method == "GET" and m.group(2) == "/events":
            store.tick(job)
            return 200, {"data": together_events(job)}
        if method == "GET" and m.group(2) == "/checkpoints":
            store.tick(job)
            done = job["terminal"] == "succeeded"
            return 200, {"data": [{"step": 20, "path": f"{job['id']}/final", "created_at": iso(job["finished"]),
                                   "checkpoint_type": "final"}] if done else []}
        if method == "POST" and m.group(2) == "/cancel":
            no_body(req)
            store.tick(job)
            if not job["terminal"]:
                job["cancel_at"] = time.time()
            return 200, together_job_view(store, job, True)
    raise ApiError(404, "Not found", "not_found", violation=m is None)


# ------------------------------------------------------------------------------
# Fireworks
# ------------------------------------------------------------------------------

def fireworks_job_view(store, job, acct):
    store.tick(job)
    out = {"name": f"accounts/{acct}/supervisedFineTuningJobs/{job['id']}", "displayName": job.get("displayName", ""),
           "state": job["status"], "dataset": job["dataset"], "baseModel": job["baseModel"],
           "createTime": iso(job["created"]), "updateTime": iso(job["last"]), "epochs": job.get("epochs", 1),
           "jobProgress": {"percent": min(100, int(100 * job["t"] / store.config["duration_s"])), "epoch": 1,
                           "inputTokens": 800},
           "status": {"code": "OK", "message": ""}}
    if job["terminal"]:
        out["completedTime"] = iso(job["finished"])
    if job["terminal"] == "succeeded":
        out["outputModel"] = job.get("outputModel") or f"accounts/{acct}/models/ft-{job['id'][:12]}"
    if job["error"]:
        out["status"] = {"code": job["error"]["code"], "message": job["error"]["message"]}
    return out


def serve_fireworks(store, req, path):
    auth = req["headers"].get("Authorization", "")
    need(auth.startswith("Bearer ") and len(auth) > 8, "unauthenticated", 401)
    m = re.fullmatch(r"/accounts/([a-z0-9-]+)(/.*)", path)
    need(m, "Paths are account-scoped: /v1/accounts/{account_id}/...", 404)
    acct, rest, method = m.group(1), m.group(2), req["method"]
    if method == "POST" and rest == "/datasets":
        body = json_body(req)
        check_keys(body, {"datasetId", "dataset"}, {"datasetId", "dataset"})
        need(re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", body["datasetId"]), "datasetId must be [a-z0-9-], at most 63")
        check_keys(body["dataset"], {"displayName", "exampleCount", "userUploaded", "format"}, {"userUploaded"})
        need(body["dataset"].get("format", "CHAT") in ("CHAT", "COMPLETION", "FORMAT_UNSPECIFIED"), "bad format")
        name = f"accounts/{acct}/datasets/{body['datasetId']}"
        if name in store.datasets:
            raise ApiError(409, f"dataset {body['datasetId']} already exists")
        store.datasets[name] = {"name": name, "state": "UPLOADING", "exampleCount": "0"}
        return 200, dict(store.datasets[name], createTime=iso(time.time()), format="CHAT")
    d = re.fullmatch(r"/datasets/([a-z0-9-]+):upload", rest)
    if method == "POST" and d:
        name = f"accounts/{acct}/datasets/{d.group(1)}"
        if name not in store.datasets:
            raise not_found("dataset")
        fields = form(req)
        need(set(fields) == {"file"}, "multipart must hold exactly the field 'file'")
        n = check_jsonl(fields["file"].data)
        store.datasets[name].update(state="READY", exampleCount=str(n))
        return 200, {"filenameToSignedUrls": {}}
    if method == "POST" and rest == "/supervisedFineTuningJobs":
        body = json_body(req)
        check_keys(body, {"dataset", "baseModel", "warmStartFrom", "outputModel", "displayName", "epochs",
                          "learningRate", "maxContextLength", "loraRank", "batchSize", "batchSizeSamples",
                          "evaluationDataset", "earlyStop", "wandbConfig"}, {"dataset"})
        need(body["dataset"] in store.datasets and store.datasets[body["dataset"]]["state"] == "READY",
             "dataset not found or not uploaded", 400)
        need(body.get("baseModel", "").startswith("accounts/"), "baseModel must be accounts/.../models/...")
        if "epochs" in body:
            number(body["epochs"], "epochs", 1, 100, True)
        if "outputModel" in body:
            need(re.fullmatch(rf"accounts/{acct}/models/[a-z0-9-]+", body["outputModel"]), "bad outputModel")
        job = store.new_job("fireworks", {"id": uuid.uuid4().hex[:20], "dataset": body["dataset"],
                                          "baseModel": body["baseModel"], "displayName": body.get("displayName"),
                                          "outputModel": body.get("outputModel"), "epochs": body.get("epochs", 1)})
        return 200, fireworks_job_view(store, job, acct)
    if method == "GET" and rest.split("?")[0] == "/supervisedFineTuningJobs":
        jobs = [fireworks_job_view(store, j, acct) for j in store.jobs.values()
                if j["kind"] == "fireworks" and not gone(j)]
        return 200, {"supervisedFineTuningJobs": jobs, "nextPageToken": "", "totalSize": len(jobs)}
    j = re.fullmatch(r"/supervisedFineTuningJobs/([a-z0-9-]+)", rest)
    if j:
        job = store.jobs.get(j.group(1))
        if job is None or job["kind"] != "fireworks" or gone(job):
            raise not_found("job")
        if method == "GET":
            return 200, fireworks_job_view(store, job, acct)
        if method == "DELETE":
            no_body(req)
            store.tick(job)
            job["deleted_at"] = time.time()
            if not job["terminal"]:
                job["cancel_at"] = time.time()
            return 200, {}
    raise ApiError(404, "Not found", violation=True)


def gone(job):
    """A deleted Fireworks job disappears a second after DELETE."""
    return job["deleted_at"] is not None and time.time() - job["deleted_at"] > 1.0


# ------------------------------------------------------------------------------
# Mistral
# ------------------------------------------------------------------------------

def mistral_job_view(store, job, detail=True):
    store.tick(job)
    out = {"id": job["id"], "object": "job", "model": job["model"], "status": job["status"],
           "job_type": "completion", "created_at": int(job["created"]), "modified_at": int(job["last"]),
           "training_files": job["training_files"], "validation_files": job.get("validation_files", []),
           "hyperparameters": job["hyperparameters"], "fine_tuned_model": None, "suffix": job.get("suffix"),
           "integrations": [], "trained_tokens": None, "auto_start": job["auto_start"],
           "metadata": {"expected_duration_seconds": 10, "cost": 4.0, "cost_currency": "USD"}}
    if job["terminal"] == "succeeded":
        out["fine_tuned_model"] = f"ft:{job['model']}:{job.get('suffix') or 'x'}:{job['id'][:8]}"
        out["trained_tokens"] = 4321
    if detail:
        events = [{"name": "status-updated", "data": {"status": s}, "created_at": int(t)} for s, t in job["history"]]
        if job["error"]:
            events.append({"name": "status-updated", "data": {"status": job["status"],
                                                              "error": job["error"]["message"]},
                           "created_at": int(job["finished"])})
        out["events"] = events
        steps = [5, 10] if job["status"] in ("RUNNING", "SUCCESS") else []
        out["checkpoints"] = [{"metrics": {"train_loss": 1.0 / s, "valid_loss": 1.2 / s,
                                           "valid_mean_token_accuracy": 0.5 + s / 100},
                               "step_number": s, "created_at": int(job["created"]) + s} for s in steps]
    return out


def serve_mistral(store, req, path):
    auth = req["headers"].get("Authorization", "")
    need(auth.startswith("Bearer ") and len(auth) > 8, "Unauthorized", 401)
    method = req["method"]
    if method == "POST" and path == "/files":
        fields = form(req, 422)
        need("file" in fields, "Field required", 422, "missing", ["body", "file"])
        need(fields.get("purpose") and fields["purpose"].text() in ("fine-tune", "batch", "ocr"),
             "Input should be 'fine-tune', 'batch' or 'ocr'", 422, "enum", ["body", "purpose"])
        need((fields["file"].filename or "").endswith(".jsonl"), "Only .jsonl files", 422)
        n = check_jsonl(fields["file"].data)
        fid = str(uuid.uuid4())
        store.files[fid] = {"id": fid, "kind": "mistral", "lines": n}
        return 200, {"id": fid, "object": "file", "bytes": len(fields["file"].data), "created_at": int(time.time()),
                     "filename": fields["file"].filename, "purpose": "fine-tune", "sample_type": "instruct",
                     "num_lines": n, "source": "upload"}
    if method == "POST" and path == "/fine_tuning/jobs":
        body = json_body(req, 422)
        check_keys(body, {"model", "training_files", "validation_files", "hyperparameters", "suffix",
                          "integrations", "auto_start", "invalid_sample_skip_percentage", "job_type",
                          "repositories", "classifier_targets"}, {"model", "hyperparameters"}, 422)
        tf = body.get("training_files", [])
        need(isinstance(tf, list) and tf and all(isinstance(f, dict) and set(f) <= {"file_id", "weight"} for f in tf),
             "training_files must be a list of {file_id, weight}", 422, "list_type", ["body", "training_files"])
        need(all(f["file_id"] in store.files for f in tf), "training file not found", 422, "value_error",
             ["body", "training_files", 0, "file_id"])
        hp = body["hyperparameters"]
        need(isinstance(hp, dict), "hyperparameters must be an object", 422, "dict_type", ["body", "hyperparameters"])
        check_keys(hp, {"training_steps", "learning_rate", "weight_decay", "warmup_fraction", "epochs", "seq_len",
                        "fim_ratio"}, set(), 422)
        if "learning_rate" in hp:
            number(hp["learning_rate"], "learning_rate", 1e-8, 1, status=422)
        if body.get("suffix") is not None:
            need(len(body["suffix"]) <= 18, "String should have at most 18 characters", 422, "string_too_long",
                 ["body", "suffix"])
        auto = body.get("auto_start", False)
        need(isinstance(auto, bool), "auto_start must be a boolean", 422, "bool_type", ["body", "auto_start"])
        job = store.new_job("mistral", {"id": str(uuid.uuid4()), "model": body["model"],
                                        "training_files": [f["file_id"] for f in tf], "hyperparameters": hp,
                                        "suffix": body.get("suffix"), "auto_start": auto, "started": auto,
                                        "start_calls": 0})
        return 200, mistral_job_view(store, job, detail=False)
    if method == "GET" and path == "/fine_tuning/jobs":
        jobs = [mistral_job_view(store, j, False) for j in store.jobs.values() if j["kind"] == "mistral"]
        return 200, {"data": list(reversed(jobs)), "object": "list", "total": len(jobs)}
    m = re.fullmatch(r"/fine_tuning/jobs/([^/]+)(/cancel|/start)?", path)
    if m and m.group(1) in store.jobs:
        job = store.jobs[m.group(1)]
        if method == "GET" and m.group(2) is None:
            return 200, mistral_job_view(store, job)
        if method == "POST" and m.group(2) == "/start":
            no_body(req)
            store.tick(job)
            job["start_calls"] += 1
            if job["status"] != "VALIDATED" or job["started"]:
                raise ApiError(400, f"Job cannot be started in status {job['status']}")
            job["started"] = True
            return 200, mistral_job_view(store, job)
        if method == "POST" and m.group(2) == "/cancel":
            no_body(req)
            store.tick(job)
            if not job["terminal"]:
                job["cancel_at"] = time.time()
            return 200, mistral_job_view(store, job)
    raise ApiError(404, "Not found", violation=m is None)


# ------------------------------------------------------------------------------
# Replicate
# ------------------------------------------------------------------------------

def replicate_view(store, job):
    store.tick(job)
    logs = "".join(f"step {s} loss {1.0 / s:.4f}\n" for s in range(1, 1 + int(6 * min(1, job["t"] / store.config["duration_s"]))))
    out = {"id": job["id"], "model": job["model"], "version": job["version"], "destination": job["destination"],
           "status": job["status"], "input": job["input"], "output": None, "logs": "Loading trainer\n" + logs,
           "error": job["error"]["message"] if job["error"] else None, "created_at": iso(job["created"]),
           "started_at": iso(job["created"] + 0.1), "completed_at": iso(job["finished"]) if job["finished"] else None,
           "urls": {"get": f"/v1/trainings/{job['id']}", "cancel": f"/v1/trainings/{job['id']}/cancel"}}
    if job["terminal"] == "succeeded":
        out["output"] = {"version": f"{job['destination']}:{job['id'][:16]}", "weights": "https://example/w.tar"}
    return out


def serve_replicate(store, req, path, base):
    auth = req["headers"].get("Authorization", "")
    need(auth.startswith("Bearer ") and len(auth) > 8, "You did not pass an authentication token", 401,
         "Unauthenticated")
    method = req["method"]
    if method == "POST" and path == "/files":
        fields = form(req)
        need("content" in fields and fields["content"].filename, "multipart field 'content' (a file) is required",
             400, "Invalid input")
        need(set(fields) <= {"content", "metadata", "filename", "type"}, "unknown multipart field")
        if "metadata" in fields:
            try:
                json.loads(fields["metadata"].text())
            except ValueError:
                raise ApiError(400, "metadata must be a JSON string", violation=True) from None
        n = check_jsonl(fields["content"].data)
        fid = uuid.uuid4().hex[:24]
        url = f"{base}/files/{fid}"
        store.files[url] = {"id": fid, "kind": "replicate", "lines": n}
        return 201, {"id": fid, "name": fields["content"].filename, "content_type": "application/jsonl",
                     "size": len(fields["content"].data), "etag": "x", "checksums": {}, "metadata": {},
                     "created_at": iso(time.time()), "expires_at": iso(time.time() + 86400), "urls": {"get": url}}
    m = re.fullmatch(r"/models/([a-z0-9_.-]+)/([a-z0-9_.-]+)/versions/([a-z0-9]+)/trainings", path)
    if method == "POST" and m:
        body = json_body(req, 422)
        check_keys(body, {"destination", "input", "webhook", "webhook_events_filter"}, {"destination", "input"}, 422)
        need(re.fullmatch(r"[a-z0-9_.-]+/[a-z0-9_.-]+", body["destination"]), "destination must be owner/model", 422,
             "Invalid destination")
        need(isinstance(body["input"], dict), "input must be an object", 422)
        urls = [v for v in body["input"].values() if isinstance(v, str) and v in store.files]
        need(urls, "input names no uploaded file URL", 422, "Invalid input")
        job = store.new_job("replicate", {"id": uuid.uuid4().hex[:26], "model": f"{m.group(1)}/{m.group(2)}",
                                          "version": m.group(3), "destination": body["destination"],
                                          "input": body["input"]})
        return 201, replicate_view(store, job)
    if method == "GET" and path == "/trainings":
        jobs = [replicate_view(store, j) for j in store.jobs.values() if j["kind"] == "replicate"]
        return 200, {"results": list(reversed(jobs)), "next": None, "previous": None}
    t = re.fullmatch(r"/trainings/([a-z0-9]+)(/cancel)?", path)
    if t and t.group(1) in store.jobs:
        job = store.jobs[t.group(1)]
        if method == "GET" and not t.group(2):
            return 200, replicate_view(store, job)
        if method == "POST" and t.group(2):
            no_body(req)
            store.tick(job)
            if not job["terminal"]:
                job["cancel_at"] = time.time() - 1
            return 200, replicate_view(store, job)
    raise ApiError(404, "Not found", "Not found", violation=t is None and m is None)


PREFIXES = [("/azure/openai", "azure"), ("/together/v1", "together"), ("/fireworks/v1", "fireworks"),
            ("/mistral/v1", "mistral"), ("/replicate/v1", "replicate")]


def serve_api(store, req, host):
    """Route by prefix; answer (status, body, kind)."""
    for prefix, kind in PREFIXES:
        if req["path"].startswith(prefix + "/"):
            path = req["path"][len(prefix):]
            try:
                with store.lock:
                    if kind == "azure":
                        return serve_azure(store, req, path) + (kind,)
                    if kind == "together":
                        return serve_together(store, req, path) + (kind,)
                    if kind == "fireworks":
                        return serve_fireworks(store, req, path) + (kind,)
                    if kind == "mistral":
                        return serve_mistral(store, req, path) + (kind,)
                    return serve_replicate(store, req, path, f"http://{host}{prefix}") + (kind,)
            except ApiError as err:
                if err.violation:
                    store.violations.append({"kind": kind, "method": req["method"], "path": req["target"],
                                             "status": err.status, "message": err.message, "body": req.get("logged")})
                return err.status, error_body(kind, err), kind
    store.violations.append({"kind": None, "method": req["method"], "path": req["target"], "message": "unknown prefix"})
    return 404, {"error": "unknown path"}, None


def serve_control(store, req):
    """The /_mock control API."""
    path, method = req["path"], req["method"]
    body = json.loads(req["body"] or b"null") if req["body"].strip() else None
    with store.lock:
        if path == "/_mock/state":
            for job in store.jobs.values():
                store.tick(job)
            jobs = [{k: v for k, v in j.items() if k != "history"} for j in store.jobs.values()]
            return 200, {"jobs": jobs, "files": list(store.files.values()), "datasets": list(store.datasets.values()),
                         "violations": store.violations, "requests": store.requests, "config": store.config,
                         "faults": store.faults}
        if path == "/_mock/faults" and method == "POST":
            store.faults.extend(body if isinstance(body, list) else [body])
            return 200, {"faults": store.faults}
        if path == "/_mock/faults" and method == "DELETE":
            store.faults = []
            return 200, {"faults": []}
        if path == "/_mock/config" and method == "POST":
            store.config.update(body)
            return 200, store.config
        if path == "/_mock/reset":
            store.reset()
            return 200, {}
        m = re.fullmatch(r"/_mock/jobs/([^/]+)/(fail|config)", path)
        if m and m.group(1) in store.jobs:
            job = store.jobs[m.group(1)]
            store.tick(job)
            if m.group(2) == "config":
                job["speed"] = body.get("speed")
                return 200, {}
            kind = job["kind"]
            job["error"] = {"code": body.get("code", "server_error"), "message": body.get("message", "failed")}
            job["status"] = body.get("status") or FAILED[kind]
            job["terminal"] = "failed"
            job["finished"] = time.time()
            job["history"].append((job["status"], job["finished"]))
            return 200, {}
    return 404, {"error": "unknown control call"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_GET(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        req = {"method": self.command, "target": self.path, "path": parts.path,
               "query": dict(parse_qsl(parts.query, keep_blank_values=True)), "headers": self.headers,
               "body": raw, "content_type": parse_header_value(self.headers.get("Content-Type", ""))[0],
               "logged": None}
        store = self.server.store
        if req["path"].startswith("/_mock"):
            self.answer(*serve_control(store, req))
            return
        action = store.take_fault(req["method"], req["path"])
        host = self.headers.get("Host", "127.0.0.1")
        if action and action.get("reset"):
            self.record(req, None, "reset")
            self.reset()
            return
        if action and action.get("status"):
            kind = next((k for p, k in PREFIXES if req["path"].startswith(p + "/")), "azure")
            status = action["status"]
            err = ApiError(status, action.get("message", f"Injected fault {status}"), action.get("code"))
            headers = {"Retry-After": str(action["retry_after"])} if "retry_after" in action else {}
            self.record(req, status, "status")
            self.answer(status, error_body(kind, err), headers)
            return
        status, body, _ = serve_api(store, req, host)
        self.record(req, status, "reset_after_processing" if action else None)
        if action and action.get("reset_after_processing"):
            self.reset()
            return
        self.answer(status, body)

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

    def record(self, req, status, fault):
        with self.server.store.lock:
            self.server.store.requests.append({"method": req["method"], "path": req["target"], "status": status,
                                               "fault": fault, "body": req.get("logged"), "ts": time.time()})

    def answer(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_" + uuid.uuid4().hex)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def reset(self):
        """Close with RST and no answer."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--speed", type=float, default=4.0)
    ap.add_argument("--duration", type=float, default=6.0)
    args = ap.parse_args(argv)
    server = Server(("127.0.0.1", args.port), Handler)
    server.store = Store(args.speed, args.duration)
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.rename(tmp, args.port_file)
    print(f"listening on {port}", flush=True)
    signal_stop = threading.Event()

    def stop(*_):
        signal_stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    import signal
    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
