"""Validate a JSON request against an AWS API operation's input shape, offline, with botocore's service models.

    python scripts/validate-aws-input.py SERVICE OPERATION FILE.json    e.g. ecs RegisterTaskDefinition

This is what `aws ecs register-task-definition --cli-input-json file://FILE.json` checks before it sends
anything: member names, types, required members and value ranges (not enum values: the tests check those). Prints botocore's report, exit 1 on errors.
Run with the validators' Python (.tools/validators, scripts/ensure-deploy-validators.sh), which has botocore.
"""

import json
import sys

import botocore.session
from botocore.validate import ParamValidator


def main() -> int:
    service, operation, path = sys.argv[1:4]
    with open(path, encoding="utf-8") as f:
        params = json.load(f)
    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        print(report.generate_report())
        return 1
    print(f"{path}: valid {service} {operation} input (botocore {botocore.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
