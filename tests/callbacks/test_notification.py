"""NotificationCallback with real notificators: a real HTTP server on 127.0.0.1, Python logging."""

import json
import logging
import socket
import threading
import warnings
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import torch
from torch import nn

from trainwell import Callback, Model
from trainwell.callbacks.notification import (
    LoggingNotificator,
    NotificationCallback,
    Notificator,
    WebhookNotificator,
)


class Webhook(HTTPServer):
    """Records every POST (path, headers, JSON body) and answers with `status`."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), WebhookHandler)
        self.received = []
        self.status = 200

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_port}/hooks/secret-token"


class WebhookHandler(BaseHTTPRequestHandler):
    timeout = 5  # a stuck client cannot hang the test server

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):  # keep the test output quiet
        pass


@pytest.fixture
def webhook():
    server = Webhook()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _closed_port_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/secret-token"  # nothing listens there any more


def _fit(callbacks, epochs=3):
    torch.manual_seed(0)
    x, y = torch.randn(12, 3), torch.randint(0, 2, (12,))
    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy", batch_metrics=["accuracy"])
    history = model.fit(x, y, validation_data=(x, y), batch_size=4, epochs=epochs, verbose=False, callbacks=callbacks)
    return model, history, (x, y)


class Collecting(Notificator):
    def __init__(self):
        self.sent = []

    def send_notification(self, message, subject=None):
        self.sent.append((subject, message))


class PoutyneStyle:
    """Poutyne's interface declares `subject` keyword-only."""

    def __init__(self):
        self.subjects = []

    def send_notification(self, message, *, subject=None):
        self.subjects.append(subject)


class FailAt(Callback):
    def on_epoch_end(self, epoch_number, logs):
        if epoch_number == 2:
            raise RuntimeError("diverged")


def test_webhook_receives_start_epochs_end_and_test(webhook):
    callback = NotificationCallback(
        WebhookNotificator(webhook.url, timeout=5), alert_frequency=2, experiment_name="xor"
    )
    model, history, (x, y) = _fit([callback], epochs=4)
    logs = model.evaluate(x, y, verbose=False, callbacks=[callback], return_dict_format=True)

    texts = [body["text"] for _, _, body in webhook.received]
    # Poutyne's subjects and messages: the subject is the text's first line, the message follows.
    assert [text.splitlines()[0] for text in texts] == [
        "Start of the training for xor.",
        "Epoch 2 is done for xor.",
        "Epoch 4 is done for xor.",
        "End of the training for xor.",
        "Start of the testing for xor.",
        "End of the testing for xor.",
    ]
    assert texts[0] == "Start of the training for xor." and texts[3] == "End of the training for xor."
    # Every key of the epoch's logs, unrounded; the logs carry no lr (Poutyne's contract).
    listed = "".join(f"{key}: {value}\n" for key, value in history[1].items())
    assert texts[1].replace("\n ", "\n") == f"Epoch 2 is done for xor.\nHere the epoch metrics: \n{listed}"
    assert "lr" not in history[1]
    assert f"test_loss: {logs['test_loss']}\n" in texts[5] and f"test_acc: {logs['test_acc']}\n" in texts[5]

    path, headers, _ = webhook.received[0]
    assert path == "/hooks/secret-token"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("trainwell/")
    assert callback.failures == 0


def test_custom_payload_and_headers_reach_the_server(webhook):
    notificator = WebhookNotificator(
        webhook.url,
        payload=lambda message, subject: {"title": subject, "body": message, "priority": 3},
        headers={"Authorization": "Bearer abc"},
    )
    notificator.send_notification("all good", subject="Done")
    notificator.send_notification("no subject")
    assert [body for _, _, body in webhook.received] == [
        {"title": "Done", "body": "all good", "priority": 3},
        {"title": None, "body": "no subject", "priority": 3},
    ]
    assert webhook.received[0][1]["Authorization"] == "Bearer abc"


def test_discord_webhooks_get_a_content_key():
    discord = WebhookNotificator("https://discord.com/api/webhooks/1/token")
    assert discord.payload("loss: 0.5", "Epoch 1/3 finished") == {"content": "Epoch 1/3 finished\nloss: 0.5"}
    assert WebhookNotificator("https://example.org/hook", message_key="msg").payload("hi") == {"msg": "hi"}


def test_unreachable_webhook_warns_once_and_training_goes_on():
    callback = NotificationCallback(WebhookNotificator(_closed_port_url(), timeout=2))
    with pytest.warns(UserWarning) as caught:
        _, history, _ = _fit([callback], epochs=3)
    assert len(history) == 3
    assert callback.failures == 5  # start, 3 epochs, end
    messages = [str(warning.message) for warning in caught if "NotificationCallback" in str(warning.message)]
    assert len(messages) == 1
    assert "failed to send a notification (URLError" in messages[0]
    assert "Training goes on" in messages[0]
    assert "secret-token" not in messages[0]  # the webhook's secret path is never shown


def test_http_error_status_is_a_failure_not_a_crash(webhook):
    webhook.status = 500
    callback = NotificationCallback(WebhookNotificator(webhook.url))
    with pytest.warns(UserWarning, match=r"failed to send a notification \(HTTPError: HTTP Error 500"):
        _, history, _ = _fit([callback], epochs=2)
    assert len(history) == 2
    assert len(webhook.received) == 4 == callback.failures


def test_keyboard_interrupt_in_a_notificator_is_not_swallowed():
    class Interrupting:
        def send_notification(self, message, subject=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fit([NotificationCallback(Interrupting())])


def test_logging_notificator_writes_records(caplog):
    callback = NotificationCallback(LoggingNotificator("tests.notify", level=logging.WARNING), alert_frequency=3)
    with caplog.at_level(logging.WARNING, logger="tests.notify"):
        _fit([callback], epochs=3)
    subjects = [record.getMessage().splitlines()[0] for record in caplog.records if record.name == "tests.notify"]
    assert subjects == ["Start of the training.", "Epoch 3 is done.", "End of the training."]
    assert all(record.levelno == logging.WARNING for record in caplog.records if record.name == "tests.notify")


def test_poutyne_style_notificators_work():
    notificator = PoutyneStyle()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a TypeError from the call would surface as the callback's warning
        _fit([NotificationCallback(notificator, experiment_name="p")], epochs=1)
    assert notificator.subjects == [
        "Start of the training for p.",
        "Epoch 1 is done for p.",
        "End of the training for p.",
    ]


def test_failed_training_is_notified():
    notificator = Collecting()
    with pytest.raises(RuntimeError, match="diverged"):
        _fit([NotificationCallback(notificator), FailAt()])
    assert notificator.sent[-1] == ("Training failed.", "RuntimeError: diverged")


def test_argument_errors_name_the_argument():
    with pytest.raises(TypeError, match=r"`notificator` must have a send_notification.*notificator of type str"):
        NotificationCallback("https://hooks.slack.com/x")
    with pytest.raises(ValueError, match=r"`alert_frequency` must be a positive int. Received: alert_frequency=0"):
        NotificationCallback(Collecting(), alert_frequency=0)
    with pytest.raises(TypeError, match=r"`experiment_name` must be a string or None"):
        NotificationCallback(Collecting(), experiment_name=3)
    with pytest.raises(ValueError, match=r"`url` must be an http:// or https:// .*Received: a URL with scheme 'ftp'"):
        WebhookNotificator("ftp://example.org/hook")
    with pytest.raises(ValueError, match=r"Received: a URL with scheme ''"):
        WebhookNotificator("hooks.slack.com/services/secret")
    with pytest.raises(ValueError, match=r"`timeout` must be a positive number of seconds. Received: timeout=0"):
        WebhookNotificator("https://example.org/hook", timeout=0)
    with pytest.raises(TypeError, match=r"`logger` must be a logging.Logger or a logger name"):
        LoggingNotificator(logger=3)
    with pytest.raises(TypeError, match=r"Can't instantiate abstract class Notificator"):
        Notificator()
