"""Cluster mode: daemons sharing rate limits, breakers and jobs through Redis.

Imported only when a config has `[cluster]` (it imports redis).
"""

from ._cluster import Cluster, ClusterStatistics, ClusterStatus, DeploymentStatus, MemberStatus
from ._link import Disconnected, Link, Note
from ._peer import Peer

__all__ = [
    "Cluster",
    "ClusterStatistics",
    "ClusterStatus",
    "DeploymentStatus",
    "Disconnected",
    "Link",
    "MemberStatus",
    "Note",
    "Peer",
]
