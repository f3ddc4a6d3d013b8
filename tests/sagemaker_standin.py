#!/usr/bin/env python3
"""A SageMaker stand-in for tests: the training API at its own endpoint, jobs that really run.

It answers CreateTrainingJob (validated against botocore's service model, with the service's error
names), DescribeTrainingJob, StopTrainingJob and ListTrainingJobs, and does what SageMaker does with a
job: pulls the training image from its registry, downloads each channel's S3 prefix, writes the
/opt/ml config files, runs InstanceCount containers (algo-1..N on one network) with `train`, streams
their output to CloudWatch Logs, moves the statuses through Starting, Downloading, Training, Uploading
and Completed / Failed / Stopped with transition times, computes FinalMetricDataList from the
MetricDefinitions, uploads model.tar.gz and output.tar.gz, sets FailureReason, enforces
MaxRuntimeInSeconds, stops with SIGTERM then SIGKILL after a grace, and syncs /opt/ml/checkpoints with
CheckpointConfig.S3Uri (restored at start). S3 and CloudWatch Logs are moto's (AWS_ENDPOINT_URL).

Usage: sagemaker_standin.py PORT WORKDIR   (STANDIN_STOP_GRACE: seconds, default 120)
"""
import datetime
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore.session

GRACE = int(os.environ.get("STANDIN_STOP_GRACE", "120"))
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
MODEL = botocore.session.get_session().get_service_model("sagemaker")
JOBS = {}
LOCK = threading.Lock()


class ApiError(Exception):
    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def now():
    return time.time()


# ---- validation against the service model -------------------------------------------------------------

def outside(meta, n):
    """Whether a length or value is outside the shape's min and max."""
    return "min" in meta and n < meta["min"] or "max" in meta and n > meta["max"]


def violation(value, path, constraint):
    """The service's message for one broken constraint."""
    shown = "" if value is None else f" '{value}'"
    return ApiError(
        "ValidationException",
        f"1 validation error detected: Value{shown} at '{path}' failed to satisfy constraint: {constraint}",
    )


def validate(shape, value, path):
    kind = shape.type_name
    where = path or "request"
    if kind == "structure":
        if not isinstance(value, dict):
            raise ApiError("ValidationException", f"{where}: expected a structure")
        for name in value:
            if name not in shape.members:
                raise ApiError("ValidationException", f"{where}: unknown member {name}")
        for name in shape.required_members:
            if name not in value:
                raise ApiError(
                    "ValidationException",
                    f"1 validation error detected: Value null at '{path + '.' if path else ''}{name}' "
                    "failed to satisfy constraint: Member must not be null",
                )
        for name, item in value.items():
            validate(shape.members[name], item, f"{path}.{name}" if path else name)
        return
    meta = shape.metadata
    if kind == "string":
        if not isinstance(value, str):
            raise ApiError("ValidationException", f"{where}: expected a string")
        if outside(meta, len(value)):
            raise violation(value, path, f"Member must have length between {meta.get('min', 0)} and {meta.get('max', 'any')}")
        if shape.enum and value not in shape.enum:
            raise violation(value, path, f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
        pattern = meta.get("pattern")
        if pattern:
            try:
                compiled = re.compile(pattern)
            except re.error:
                compiled = None  # a Java-only construct: not checked here
            if compiled and not compiled.fullmatch(value):
                raise violation(value, path, f"Member must satisfy regular expression pattern: {pattern}")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ApiError("ValidationException", f"{where}: expected an integer")
        if outside(meta, value):
            raise violation(value, path, f"Member must have value between {meta.get('min')} and {meta.get('max')}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise ApiError("ValidationException", f"{where}: expected a boolean")
    elif kind == "list":
        if not isinstance(value, list):
            raise ApiError("ValidationException", f"{where}: expected a list")
        if outside(meta, len(value)):
            raise violation(None, path, f"Member must have length between {meta.get('min', 0)} and {meta.get('max', 'any')}")
        for index, item in enumerate(value):
            validate(shape.member, item, f"{path}.{index + 1}")
    elif kind == "map":
        if not isinstance(value, dict):
            raise ApiError("ValidationException", f"{where}: expected a map")
        if outside(meta, len(value)):
            raise violation(None, path, f"Member must have length less than or equal to {meta.get('max')}")
        for key, item in value.items():
            validate(shape.key, key, f"{path}.key")
            validate(shape.value, item, f"{path}.{key}")


# ---- AWS clients (moto) ----------------------------------------------------------------------------------

def client(name):
    return boto3.client(
        name,
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def s3_parts(uri):
    rest = uri[len("s3://"):]
    bucket, _, key = rest.partition("/")
    return bucket, key


def download_prefix(s3, uri, into):
    bucket, prefix = s3_parts(uri)
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.endswith("/"):
                continue
            relative = key[len(prefix):].lstrip("/") or os.path.basename(key)
            target = os.path.join(into, relative)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            s3.download_file(bucket, key, target)
            count += 1
    return count


def upload_tree(s3, folder, uri):
    bucket, prefix = s3_parts(uri)
    prefix = prefix.rstrip("/")
    for base, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(base, name)
            key = f"{prefix}/{os.path.relpath(path, folder)}" if prefix else os.path.relpath(path, folder)
            s3.upload_file(path, bucket, key)


def tarball(folders):
    """A .tar.gz of the files of several folders (the first to name a file wins), as bytes."""
    seen = set()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for folder in folders:
            if not os.path.isdir(folder):
                continue
            for base, _, files in os.walk(folder):
                for name in sorted(files):
                    path = os.path.join(base, name)
                    arcname = os.path.relpath(path, folder)
                    if arcname in seen or os.path.islink(path) or not os.path.isfile(path):
                        continue
                    seen.add(arcname)
                    tar.add(path, arcname=arcname)
    return buffer.getvalue()


# ---- a job -----------------------------------------------------------------------------------------------

class Job:
    def __init__(self, request, workdir):
        self.request = request
        self.name = request["TrainingJobName"]
        self.created = now()
        self.status = "InProgress"
        self.secondary = "Starting"
        self.transitions = [{"Status": "Starting", "StartTime": now(), "StatusMessage": "Preparing the instances for training"}]
        self.failure_reason = None
        self.training_start = None
        self.training_end = None
        self.final_metrics = []
        self.model_artifacts = None
        self.stop_requested = False
        self.stop_reason = None
        self.containers = []
        self.hosts_of = {}
        self.network = None
        self.root = os.path.join(workdir, self.name)
        self.log_lines = []

    def describe(self):
        out = dict(self.request)
        out.pop("Tags", None)
        out.update({
            "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{self.name.lower()}",
            "TrainingJobStatus": self.status,
            "SecondaryStatus": self.secondary,
            "CreationTime": self.created,
            "LastModifiedTime": now(),
            "SecondaryStatusTransitions": self.transitions,
        })
        if self.training_start:
            out["TrainingStartTime"] = self.training_start
        if self.training_end:
            out["TrainingEndTime"] = self.training_end
        if self.failure_reason:
            out["FailureReason"] = self.failure_reason
        if self.final_metrics:
            out["FinalMetricDataList"] = self.final_metrics
        if self.model_artifacts:
            out["ModelArtifacts"] = {"S3ModelArtifacts": self.model_artifacts}
        return out

    def move(self, secondary, message, status=None):
        with LOCK:
            stamp = now()
            if self.transitions and "EndTime" not in self.transitions[-1]:
                self.transitions[-1]["EndTime"] = stamp
            self.transitions.append({"Status": secondary, "StartTime": stamp, "StatusMessage": message})
            self.secondary = secondary
            if status:
                self.status = status
                self.transitions[-1]["EndTime"] = stamp

    def run(self):
        try:
            self._run()
        except Exception as error:  # the stand-in's own trouble ends the job, as a service error would
            traceback.print_exc()
            self.failure_reason = f"InternalServerError: {error}"[:1024]
            self.move("Failed", "Training job failed", status="Failed")
        finally:
            self.cleanup()

    def _run(self):
        request = self.request
        s3 = client("s3")
        logs = client("logs")
        spec = request["AlgorithmSpecification"]
        image = spec["TrainingImage"]
        count = request["ResourceConfig"]["InstanceCount"]
        instance_type = request["ResourceConfig"]["InstanceType"]
        hosts = [f"algo-{i}" for i in range(1, count + 1)]
        pulled = subprocess.run(["docker", "pull", "-q", image], capture_output=True, text=True)
        if pulled.returncode != 0:
            self.failure_reason = f"ClientError: Cannot pull the training image {image}: {pulled.stderr.strip()}"[:1024]
            self.move("Failed", "Training job failed", status="Failed")
            return
        self.move("Downloading", "Downloading input data")
        checkpoint = request.get("CheckpointConfig")
        for host in hosts:
            root = os.path.join(self.root, host)
            for folder in ["input/config", "model", "output/data", "checkpoints", "code"]:
                os.makedirs(os.path.join(root, folder), exist_ok=True)
            channels = {}
            for channel in request.get("InputDataConfig", []):
                name = channel["ChannelName"]
                source = channel["DataSource"]["S3DataSource"]
                download_prefix(s3, source["S3Uri"], os.path.join(root, "input/data", name))
                config = {
                    "TrainingInputMode": channel.get("InputMode", spec.get("TrainingInputMode", "File")),
                    "S3DistributionType": source.get("S3DistributionType", "FullyReplicated"),
                    "RecordWrapperType": channel.get("RecordWrapperType", "None"),
                }
                if "ContentType" in channel:
                    config["ContentType"] = channel["ContentType"]
                channels[name] = config
            if checkpoint:
                download_prefix(s3, checkpoint["S3Uri"], os.path.join(root, "checkpoints"))
            resource = {
                "current_host": host,
                "current_instance_type": instance_type,
                "current_group_name": "homogeneousCluster",
                "hosts": hosts,
                "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": instance_type, "hosts": hosts}],
                "network_interface_name": "eth0",
            }
            files = {
                "hyperparameters.json": request.get("HyperParameters", {}),
                "inputdataconfig.json": channels,
                "resourceconfig.json": resource,
            }
            for name, content in files.items():
                with open(os.path.join(root, "input/config", name), "w") as out:
                    json.dump(content, out)
            subprocess.run(["chmod", "-R", "a+rwX", root], check=False)
        if self.stop_requested:
            self.finish_stopped()
            return

        self.move("Training", "Training image download completed. Training in progress.")
        self.training_start = now()
        if count > 1:
            self.network = f"standin-{self.name}"
            subprocess.run(["docker", "network", "create", self.network], capture_output=True, check=True)
        try:
            logs.create_log_group(logGroupName=LOG_GROUP)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        epoch = int(now())
        followers = []
        for host in hosts:
            container = f"standin-{self.name}-{host}"
            command = ["docker", "run", "-d", "--name", container, "--hostname", host,
                       "-v", f"{os.path.join(self.root, host)}:/opt/ml",
                       "-e", f"TRAINING_JOB_NAME={self.name}",
                       "--label", "grounds-standin=1"]
            for key, value in (request.get("Environment") or {}).items():
                command += ["-e", f"{key}={value}"]
            if self.network:
                command += ["--network", self.network, "--network-alias", host]
            command += [image, "train"]
            subprocess.run(command, capture_output=True, check=True)
            self.containers.append(container)
            self.hosts_of[container] = host
            stream = f"{self.name}/{host}-{epoch}"
            logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
            follower = threading.Thread(target=self.follow, args=(container, stream, logs), daemon=True)
            follower.start()
            followers.append(follower)

        limit = request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
        deadline = self.training_start + limit if limit else None
        codes = {}
        while len(codes) < len(self.containers):
            for container in self.containers:
                if container in codes:
                    continue
                state = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", container],
                                       capture_output=True, text=True).stdout.split()
                if state and state[0] == "false":
                    codes[container] = int(state[1])
            if len(codes) == len(self.containers):
                break
            if deadline and now() > deadline and not self.stop_requested:
                self.stop_requested = True
                self.stop_reason = "MaxRuntimeExceeded"
                self.move("MaxRuntimeExceeded", f"Training job runtime exceeded MaxRuntimeInSeconds provided")
                self.stop_containers()
            time.sleep(0.2)
        for follower in followers:
            follower.join(timeout=30)
        self.training_end = now()

        self.move("Uploading", "Uploading generated training model")
        output = request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        bucket, prefix = s3_parts(f"{output}/{self.name}/output/")
        roots = [os.path.join(self.root, host) for host in hosts]
        s3.put_object(Bucket=bucket, Key=f"{prefix}model.tar.gz", Body=tarball([os.path.join(r, "model") for r in roots]))
        self.model_artifacts = f"s3://{bucket}/{prefix}model.tar.gz"
        data = tarball([os.path.join(r, "output/data") for r in roots])
        s3.put_object(Bucket=bucket, Key=f"{prefix}output.tar.gz", Body=data)
        if checkpoint:
            upload_tree(s3, os.path.join(roots[0], "checkpoints"), checkpoint["S3Uri"])
        self.final_metrics = self.metrics()

        failed = {c: code for c, code in codes.items() if code != 0}
        if self.stop_requested:
            self.finish_stopped()
        elif failed:
            container, code = sorted(failed.items())[0]
            host = self.hosts_of[container]
            failure = os.path.join(self.root, host, "output/failure")
            if os.path.isfile(failure):
                reason = open(failure, errors="replace").read()
            else:
                reason = f"AlgorithmError: , exit code: {code}"
            self.failure_reason = reason[:1024]
            self.move("Failed", "Training job failed", status="Failed")
        else:
            self.move("Completed", "Training job completed", status="Completed")

    def finish_stopped(self):
        if self.stop_reason == "MaxRuntimeExceeded":
            # SageMaker ends such a job as Stopped, its secondary status saying why.
            self.move("MaxRuntimeExceeded", "Job stopped as it exceeded the maximum runtime", status="Stopped")
        else:
            self.move("Stopped", "Training job stopped", status="Stopped")

    def follow(self, container, stream, logs):
        # As SageMaker's log agent does: lines go to CloudWatch in batches, and a batch waits at most
        # 0.3 s, also when the job prints nothing more (a job that prints a line and sleeps is seen).
        process = subprocess.Popen(["docker", "logs", "-f", container], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)
        batch = []
        lock = threading.Lock()
        done = threading.Event()

        def flush():
            with lock:
                if batch:
                    logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=list(batch))
                    batch.clear()

        def flush_every_while():
            while not done.wait(0.3):
                flush()

        flusher = threading.Thread(target=flush_every_while, daemon=True)
        flusher.start()
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.log_lines.append(line)
            with lock:
                batch.append({"timestamp": int(time.time() * 1000), "message": line})
                full = len(batch) >= 50
            if full:
                flush()
        done.set()
        flusher.join()
        flush()
        process.wait()

    def metrics(self):
        found = []
        for definition in self.request["AlgorithmSpecification"].get("MetricDefinitions", []):
            try:
                pattern = re.compile(definition["Regex"])
            except re.error:
                continue
            value = None
            for line in self.log_lines:
                match = pattern.search(line)
                if match:
                    try:
                        value = float(match.group(1))
                    except (ValueError, IndexError):
                        pass
            if value is not None and value == value and abs(value) != float("inf"):
                found.append({"MetricName": definition["Name"], "Value": value, "Timestamp": now()})
        return found

    def stop_containers(self):
        for container in list(self.containers):
            subprocess.Popen(["docker", "stop", "-t", str(GRACE), container],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.status != "InProgress" or self.stop_requested:
            return
        self.stop_requested = True
        self.move("Stopping", "Stopping the training job")
        self.stop_containers()

    def cleanup(self):
        for container in self.containers:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        if self.network:
            subprocess.run(["docker", "network", "rm", self.network], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


# ---- the API ---------------------------------------------------------------------------------------------

def create_training_job(body, workdir):
    validate(MODEL.operation_model("CreateTrainingJob").input_shape, body, "")
    stopping = body.get("StoppingCondition", {})
    if body.get("EnableManagedSpotTraining"):
        wait = stopping.get("MaxWaitTimeInSeconds")
        if wait is None:
            raise ApiError("ValidationException", "Invalid MaxWaitTimeInSeconds. It is required for managed spot training.")
        if wait < stopping.get("MaxRuntimeInSeconds", 86400):
            raise ApiError("ValidationException", "Invalid MaxWaitTimeInSeconds. It must be present and be greater than or equal to MaxRuntimeInSeconds")
    for field in ("AlgorithmSpecification", "ResourceConfig", "StoppingCondition"):
        if field not in body:
            raise ApiError("ValidationException", f"1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null")
    name = body["TrainingJobName"]
    with LOCK:
        if name in JOBS:
            raise ApiError("ResourceInUse", f"Training job names must be unique within an AWS account and region, and a training job with this name already exists (arn:aws:sagemaker:us-east-1:123456789012:training-job/{name.lower()})")
        job = Job(body, workdir)
        JOBS[name] = job
    threading.Thread(target=job.run, daemon=True).start()
    return {"TrainingJobArn": job.describe()["TrainingJobArn"]}


def job_named(body):
    name = body.get("TrainingJobName", "")
    with LOCK:
        job = JOBS.get(name)
    if job is None:
        raise ApiError("ValidationException", "Requested resource not found.")
    return job


def list_training_jobs(body):
    with LOCK:
        jobs = list(JOBS.values())
    summaries = [{
        "TrainingJobName": job.name,
        "TrainingJobArn": job.describe()["TrainingJobArn"],
        "CreationTime": job.created,
        "TrainingJobStatus": job.status,
        "SecondaryStatus": job.secondary,
    } for job in sorted(jobs, key=lambda j: j.created, reverse=True)]
    if "NameContains" in body:
        summaries = [s for s in summaries if body["NameContains"] in s["TrainingJobName"]]
    if "StatusEquals" in body:
        summaries = [s for s in summaries if s["TrainingJobStatus"] == body["StatusEquals"]]
    return {"TrainingJobSummaries": summaries[: body.get("MaxResults", 100)]}


class Handler(BaseHTTPRequestHandler):
    workdir = "."

    def log_message(self, *args):
        pass

    def answer(self, status, payload):
        data = json.dumps(payload, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer(200, {"service": "sagemaker-standin", "jobs": len(JOBS)})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        operation = self.headers.get("X-Amz-Target", "").split(".")[-1]
        try:
            if operation == "CreateTrainingJob":
                result = create_training_job(body, self.workdir)
            elif operation == "DescribeTrainingJob":
                result = job_named(body).describe()
            elif operation == "StopTrainingJob":
                job_named(body).stop()
                result = {}
            elif operation == "ListTrainingJobs":
                result = list_training_jobs(body)
            else:
                raise ApiError("UnknownOperationException", f"the stand-in does not answer {operation}")
            self.answer(200, result)
        except ApiError as error:
            self.answer(error.status, {"__type": error.code, "message": error.message})


def main():
    port, workdir = int(sys.argv[1]), sys.argv[2]
    os.makedirs(workdir, exist_ok=True)
    Handler.workdir = workdir
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
