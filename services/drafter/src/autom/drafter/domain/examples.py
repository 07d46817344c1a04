"""Few-shot intent -> reply examples shown to the model; a test validates each definition."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Example:
    """One worked example: what a user said and the exact reply expected."""

    intent: str
    reply: dict[str, Any]


SCHEDULE_HTTP = Example(
    intent=(
        "Every weekday at 8 in Berlin, fetch https://status.example.com/api/status.json and "
        "post the status to our team webhook."
    ),
    reply={
        "definition": {
            "name": "weekday-status-post",
            "description": "Fetch the status page at 08:00 on weekdays and post it to a webhook",
            "goal": "Tell the team the service status every working morning",
            "triggers": [
                {
                    "type": "schedule",
                    "config": {"cron": "0 8 * * 1-5", "timezone": "Europe/Berlin"},
                }
            ],
            "plan": [
                {
                    "id": "fetch",
                    "action": "http_request",
                    "params": {
                        "method": "GET",
                        "url": "https://status.example.com/api/status.json",
                    },
                },
                {
                    "id": "post",
                    "action": "http_request",
                    "params": {
                        "method": "POST",
                        "url": "{{ secrets.TEAM_WEBHOOK_URL }}",
                        "json": {"text": "Status: {{ steps.fetch.output.json.status }}"},
                    },
                },
            ],
        },
        "message": "The webhook URL is read from the secret TEAM_WEBHOOK_URL.",
    },
)

AGENT_WITH_OUTPUT_SCHEMA = Example(
    intent=(
        "Every Monday at 9 Zurich time, look at the open issues of octo/widgets and give me a "
        "summary with an urgency rating."
    ),
    reply={
        "definition": {
            "name": "weekly-issue-triage",
            "description": "Summarise the open issues of a repository every Monday at 09:00",
            "goal": "Keep the team aware of open issues and how urgent they are",
            "triggers": [
                {
                    "type": "schedule",
                    "config": {"cron": "0 9 * * 1", "timezone": "Europe/Zurich"},
                    "inputs": {"repo": "octo/widgets"},
                }
            ],
            "inputs": {
                "schema": {
                    "type": "object",
                    "required": ["repo"],
                    "properties": {"repo": {"type": "string"}},
                }
            },
            "plan": [
                {
                    "id": "fetch",
                    "action": "http_request",
                    "params": {
                        "method": "GET",
                        "url": "https://api.github.com/repos/{{ inputs.repo }}/issues",
                        "query": {"state": "open"},
                    },
                },
                {
                    "id": "triage",
                    "action": "agent_task",
                    "params": {
                        "prompt": (
                            "Summarise these open issues and rate the overall urgency:\n"
                            "{{ steps.fetch.output.json | tojson }}"
                        ),
                        "output_schema": {
                            "type": "object",
                            "required": ["summary", "urgency"],
                            "properties": {
                                "summary": {"type": "string"},
                                "urgency": {"type": "string", "enum": ["low", "medium", "high"]},
                            },
                        },
                    },
                },
            ],
            "execution": {"budget_usd": 0.5, "timeout": "10m"},
        }
    },
)

MULTI_STEP_WHEN = Example(
    intent=(
        "Check https://shop.example.com/health every 15 minutes; when it does not answer 200, "
        "alert our Slack webhook and log a warning."
    ),
    reply={
        "definition": {
            "name": "shop-health-alert",
            "description": "Check the shop's health every 15 minutes and alert Slack on failure",
            "goal": "Notice shop outages within 15 minutes",
            "triggers": [
                {"type": "schedule", "config": {"cron": "*/15 * * * *", "timezone": "UTC"}}
            ],
            "plan": [
                {
                    "id": "check",
                    "action": "http_request",
                    "params": {
                        "method": "GET",
                        "url": "https://shop.example.com/health",
                        "timeout": "10s",
                    },
                },
                {
                    "id": "alert",
                    "action": "http_request",
                    "when": "{{ steps.check.output.status != 200 }}",
                    "params": {
                        "method": "POST",
                        "url": "{{ secrets.SLACK_WEBHOOK_URL }}",
                        "json": {
                            "text": "Shop health check answered {{ steps.check.output.status }}"
                        },
                    },
                },
                {
                    "id": "record",
                    "action": "log",
                    "when": "{{ steps.check.output.status != 200 }}",
                    "params": {
                        "message": "shop unhealthy: status {{ steps.check.output.status }}",
                        "level": "warning",
                    },
                },
            ],
            "execution": {
                "concurrency": "skip",
                "retry": {"max_retries": 2, "backoff": "exponential", "initial_delay": "5s"},
            },
        }
    },
)

GITHUB_PUSH_WEBHOOK = Example(
    intent=(
        "When a GitHub push arrives for our repo, post who pushed and how many commits to "
        "our Slack webhook."
    ),
    reply={
        "definition": {
            "name": "github-push-to-slack",
            "description": "Post each GitHub push (pusher, commit count) to Slack",
            "goal": "Let the team see pushes as they happen",
            "triggers": [
                {
                    "type": "webhook",
                    "config": {
                        "auth": "hmac_body",
                        "secret": "GITHUB_WEBHOOK_SECRET",
                        "signature_header": "x-hub-signature-256",
                        "delivery_header": "x-github-delivery",
                        "headers": ["x-github-event"],
                    },
                }
            ],
            "plan": [
                {
                    "id": "post",
                    "action": "http_request",
                    "when": "{{ inputs.headers['x-github-event'] == 'push' }}",
                    "params": {
                        "method": "POST",
                        "url": "{{ secrets.SLACK_WEBHOOK_URL }}",
                        "json": {
                            "text": "{{ inputs.pusher.name }} pushed "
                            "{{ inputs.commits | length }} commit(s) to {{ inputs.ref }}"
                        },
                    },
                }
            ],
        },
        "message": (
            "Set GITHUB_WEBHOOK_SECRET to the secret you give GitHub, and SLACK_WEBHOOK_URL; "
            "the hook URL is shown when the automation is created."
        ),
    },
)

CLARIFY = Example(
    intent="Send me a report.",
    reply={
        "questions": [
            "Which data should the report contain, and where does it come from (a URL or API)?",
            "How often should it run, and at what time?",
            "Where should it be sent (a webhook URL or a secret holding one)?",
        ]
    },
)

OUT_OF_SCOPE = Example(
    intent="What is the capital of France?",
    reply={"out_of_scope": "This is a question, not a request to automate something."},
)

# Definitions first: they teach the envelope; the last two teach the other two answers.
EXAMPLES: tuple[Example, ...] = (
    SCHEDULE_HTTP,
    AGENT_WITH_OUTPUT_SCHEMA,
    MULTI_STEP_WHEN,
    GITHUB_PUSH_WEBHOOK,
    CLARIFY,
    OUT_OF_SCOPE,
)
