"""Account recovery (recovery links, codes and mail) from Reclaim's
WebAssembly component: the same `.wasm`, byte for byte, that the Rust host
embeds, hosted here on wasmtime with storage in SQLite.

    from reclaim import Reclaim, Settings

    with Reclaim("reclaim.db", Settings("https://id.example.com", [secret])) as reclaim:
        ann = reclaim.directory.create(email="ann@example.com")
        link = reclaim.create_link(ann.id, expires_in="30m")
        print(reclaim.redeem_link(link.link.split("token=")[1]).identity_id)
"""

from ._capabilities import Clock, Directory, Mailer, ManualClock, SystemClock
from ._host import Reclaim, component_path
from ._model import (
    Identity, IdentityRef, Mailed, Message, RecoveryCode, RecoveryError, RecoveryLink, Redemption, Settings,
)
from ._sqlite import OutboxMailer, SqliteDirectory

__all__ = [
    "Clock", "Directory", "Identity", "IdentityRef", "Mailed", "Mailer", "ManualClock", "Message",
    "OutboxMailer", "Reclaim", "RecoveryCode", "RecoveryError", "RecoveryLink", "Redemption",
    "Settings", "SqliteDirectory", "SystemClock", "component_path",
]
