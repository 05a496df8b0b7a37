"""Messages about a run, sent to a chat or a log: ``NotificationCallback`` and notificators.

A notificator is any object with ``send_notification(message, subject=None)`` (Poutyne's interface,
which the ``notif`` package's notificators follow). Two come with trainwell and need no extra package:
:class:`WebhookNotificator` POSTs JSON to an incoming webhook (Slack, Discord, Mattermost, Teams
connectors, or your own endpoint) and :class:`LoggingNotificator` writes to Python logging.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from numbers import Real
from typing import Any

from trainwell.callbacks.base import Callback
from trainwell.utils.checks import check_positive_int

__all__ = ["LoggingNotificator", "NotificationCallback", "Notificator", "WebhookNotificator", "format_logs"]

_DISCORD_HOSTS = ("discord.com", "discordapp.com")


class Notificator(ABC):
    """Sends a message somewhere: a chat, a mailbox, a log.

    Subclasses implement :meth:`send_notification` and raise when sending fails;
    :class:`NotificationCallback` turns those errors into a single warning.
    """

    @abstractmethod
    def send_notification(self, message: str, subject: str | None = None) -> None:
        """Sends ``message``, under ``subject`` when given (a title line for chats)."""


def _join(message: str, subject: str | None) -> str:
    return "\n".join(part for part in (subject, message) if part)


def _redacted(url: str) -> str:
    """A webhook URL without its path and query, which usually hold the secret token."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/..."


class WebhookNotificator(Notificator):
    r"""POSTs each notification as JSON to an incoming-webhook URL, with the standard library only.

    The default body is ``{"text": "<subject>\n<message>"}``, which Slack, Mattermost, Rocket.Chat and
    Teams incoming-webhook connectors accept; Discord URLs get ``{"content": ...}`` instead. Any other
    shape (Teams workflows, ntfy, your own service) is one ``payload`` function away.

    Args:
        url: the ``http://`` or ``https://`` webhook URL. It usually contains a secret: it is never shown
            in full in reprs or warnings.
        timeout: seconds to wait for the server before giving up on one notification.
        message_key: the JSON key of the text (default: ``'content'`` for Discord, ``'text'`` otherwise).
        payload: a function ``payload(message, subject) -> dict`` building the JSON body; replaces the default.
        headers: extra HTTP headers (an authorization token, for instance).

    Raises:
        urllib.error.URLError: from :meth:`send_notification`, when the server cannot be reached or
            answers with an error status.

    >>> notificator = WebhookNotificator('https://hooks.slack.com/services/T0/B0/secret')
    >>> notificator
    WebhookNotificator('https://hooks.slack.com/...')
    >>> notificator.payload('loss: 0.12', 'Epoch 3/10 finished')
    {'text': 'Epoch 3/10 finished\nloss: 0.12'}
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        message_key: str | None = None,
        payload: Callable[[str, str | None], Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(url, str):
            raise TypeError(f"`url` must be a webhook URL string. Received: url of type {type(url).__name__}.")
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https"):
            # The URL itself is not shown: webhook URLs carry secrets, and error messages end up in logs.
            raise ValueError(
                f"`url` must be an http:// or https:// webhook URL. Received: a URL with scheme {scheme!r}. Copy "
                "the full URL your chat service gives for an incoming webhook."
            )
        if message_key is not None and not isinstance(message_key, str):
            raise TypeError(f"`message_key` must be a string or None. Received: message_key={message_key!r}.")
        if isinstance(timeout, bool) or not isinstance(timeout, Real) or not timeout > 0:
            raise ValueError(f"`timeout` must be a positive number of seconds. Received: timeout={timeout!r}.")
        if payload is not None and not callable(payload):
            raise TypeError(f"`payload` must be a function (message, subject) -> dict. Received: payload={payload!r}.")
        host = urllib.parse.urlsplit(url).hostname or ""
        is_discord = host.endswith(_DISCORD_HOSTS)
        self.url: str = url
        self.timeout: float = float(timeout)
        self.message_key: str = message_key or ("content" if is_discord else "text")
        self.build_payload: Callable[[str, str | None], Mapping[str, Any]] | None = payload
        self.headers: dict[str, str] = dict(headers or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({_redacted(self.url)!r})"

    def payload(self, message: str, subject: str | None = None) -> dict[str, Any]:
        """The JSON body sent for one notification."""
        if self.build_payload is not None:
            return dict(self.build_payload(message, subject))
        return {self.message_key: _join(message, subject)}

    def send_notification(self, message: str, subject: str | None = None) -> None:
        """POSTs the notification; raises ``urllib.error.URLError`` (or ``HTTPError``) when it fails."""
        from trainwell.version import __version__

        body = json.dumps(self.payload(message, subject)).encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": f"trainwell/{__version__}", **self.headers}
        import urllib.request  # here, not at import: it pulls in http.client and ssl (~17 ms per process)

        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # the scheme is checked: http(s) only
            response.read()


class LoggingNotificator(Notificator):
    """Writes each notification to a Python logger (to a file, syslog, or a handler of your own).

    Args:
        logger: a ``logging.Logger`` or the name of one.
        level: the level of the records (``logging.INFO`` by default).

    >>> LoggingNotificator('trainwell.notifications').send_notification('loss: 0.12', 'Epoch 1/3 finished')
    """

    def __init__(self, logger: logging.Logger | str = "trainwell.notifications", level: int = logging.INFO) -> None:
        if not isinstance(logger, (logging.Logger, str)):
            raise TypeError(
                f"`logger` must be a logging.Logger or a logger name. Received: logger of type {type(logger).__name__}."
            )
        if isinstance(level, bool) or not isinstance(level, int):
            raise TypeError(f"`level` must be a logging level such as logging.INFO. Received: level={level!r}.")
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.level = level

    def send_notification(self, message: str, subject: str | None = None) -> None:
        """Logs ``subject`` and ``message`` as one record."""
        self.logger.log(self.level, "%s", _join(message, subject))


def format_logs(logs: Mapping[str, Any]) -> str:
    r"""Logs as Poutyne's notifications list them: one ``name: value`` per line, every key, values unrounded.

    >>> format_logs({'epoch': 2, 'loss': 0.5})
    'epoch: 2\n loss: 0.5\n'
    """
    return " ".join(f"{key}: {value}\n" for key, value in logs.items())


class NotificationCallback(Callback):
    """Sends a notification when training and evaluation start and end, and every ``alert_frequency`` epochs.

    The subjects and messages are Poutyne's: ``'Start of the training.'``, ``'Epoch 3 is done.'`` with
    the epoch's logs (``'Here the epoch metrics: ...'``), ``'End of the training.'``, ``'Start of the
    testing.'``, ``'End of the testing.'`` with the test logs; with ``experiment_name``, `` for <name>``
    comes before the final period. A run that raises sends ``'Training failed.'`` with the error.
    Notifying never stops training: when the notificator raises (network down, bad URL), the callback
    warns once, counts the failures in :attr:`failures`, and keeps going.

    Args:
        notificator: any object with ``send_notification(message, subject=None)``: a
            :class:`WebhookNotificator`, a :class:`LoggingNotificator`, a ``notif`` notificator...
        alert_frequency: send the epoch notification every this many epochs.
        experiment_name: named in every subject.

    >>> callback = NotificationCallback(LoggingNotificator(), alert_frequency=5, experiment_name='mnist')
    """

    def __init__(self, notificator: Any, alert_frequency: int = 1, experiment_name: str | None = None) -> None:
        if not callable(getattr(notificator, "send_notification", None)):
            raise TypeError(
                "`notificator` must have a send_notification(message, subject=None) method. Received: notificator "
                f"of type {type(notificator).__name__}. Use WebhookNotificator(url) or LoggingNotificator()."
            )
        check_positive_int(alert_frequency, "alert_frequency")
        if experiment_name is not None and not isinstance(experiment_name, str):
            raise TypeError(
                f"`experiment_name` must be a string or None. Received: experiment_name={experiment_name!r}."
            )
        self.notificator = notificator
        self.alert_frequency = alert_frequency
        self.experiment_name = experiment_name
        self.failures = 0

    def _subject(self, event: str) -> str:
        name = f" for {self.experiment_name}" if self.experiment_name is not None else ""
        return f"{event}{name}."

    def notify(self, event: str, message: str = "") -> None:
        """Sends ``message`` under the subject ``event``; a failure warns once and never raises."""
        try:
            # `subject` by keyword: Poutyne-style notificators declare it keyword-only.
            self.notificator.send_notification(message, subject=self._subject(event))
        except Exception as error:  # any notificator error: training matters more than its news
            self.failures += 1
            if self.failures == 1:
                warnings.warn(
                    f"NotificationCallback: {self.notificator!r} failed to send a notification "
                    f"({type(error).__name__}: {error}). Training goes on; later failures are only counted "
                    "in `failures`.",
                    stacklevel=2,
                )

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:
        """Sends 'Start of the training.'."""
        self.notify("Start of the training")

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:
        """Every ``alert_frequency`` epochs, sends the epoch's logs."""
        if epoch_number % self.alert_frequency == 0:
            self.notify(f"Epoch {epoch_number} is done", f"Here the epoch metrics: \n{format_logs(logs)}")

    def on_train_end(self, logs: Mapping[str, Any]) -> None:
        """Sends 'End of the training.'."""
        self.notify("End of the training")

    def on_test_begin(self, logs: Mapping[str, Any]) -> None:
        """Sends 'Start of the testing.'."""
        self.notify("Start of the testing")

    def on_test_end(self, logs: Mapping[str, Any]) -> None:
        """Sends 'End of the testing.' with the ``test_`` logs."""
        self.notify("End of the testing", f"Here the test metrics: \n{format_logs(logs)}")

    def on_exception(self, exception: BaseException) -> None:
        """Sends 'Training failed.' with the error."""
        self.notify("Training failed", f"{type(exception).__name__}: {exception}")
