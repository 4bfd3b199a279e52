"""Container health: a DICOM C-ECHO to our own SCP over loopback, as calling AE HEALTHCHECK.

A bare TCP connect would hold one of the association slots until the ACSE timeout; an echo
releases its association at once. Exit 0 when the SCP answers Success.
"""

import os
import sys

from pynetdicom import AE
from pynetdicom.sop_class import Verification

ae = AE(ae_title="HEALTHCHECK")
ae.add_requested_context(Verification)
ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 5
assoc = ae.associate("127.0.0.1", int(os.environ.get("BONEAGE_PORT", "11112")),
                     ae_title=os.environ.get("BONEAGE_AE_TITLE", "BONEAGE"))
if not assoc.is_established:
    sys.exit(1)
status = assoc.send_c_echo()
assoc.release()
sys.exit(0 if status and status.Status == 0x0000 else 1)
