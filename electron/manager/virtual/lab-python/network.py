# The board lab's `network` (ESP8266 MicroPython has it in flash, written in C).
# There is one access point, the lab's (MicroPythonBoard option `wifi`): joining it
# succeeds ~50 ms after connect(); a wrong password or another network never does.
# The "network" reached once connected is the host's (ifconfig says 127.0.0.1).
from time import ticks_ms, ticks_diff
import _cm_lab_host as _h

STA_IF = 0
AP_IF = 1
STAT_IDLE = 0
STAT_CONNECTING = 1
STAT_WRONG_PASSWORD = 2
STAT_NO_AP_FOUND = 3
STAT_CONNECT_FAIL = 4
STAT_GOT_IP = 5
MODE_11B = 1
MODE_11G = 2
MODE_11N = 3
AUTH_OPEN = 0
AUTH_WEP = 1
AUTH_WPA_PSK = 2
AUTH_WPA2_PSK = 3
AUTH_WPA_WPA2_PSK = 4

_JOIN_MS = 50   # time to join the lab's access point
_FAIL_MS = 200  # time to give up on a wrong one
# Per interface: [active, ssid, connect time, outcome (0 ok, 2/3 failure), connecting]
_st = [[False, '', 0, 0, False], [True, 'MicroPython-lab', 0, 0, False]]


def _str(v):
    return str(v, 'utf-8') if isinstance(v, (bytes, bytearray)) else v


class WLAN:
    def __init__(self, i=STA_IF):
        self._s = _st[i]
        self._i = i

    def active(self, v=None):
        if v is None:
            return self._s[0]
        self._s[0] = bool(v)
        if not v:
            self._s[4] = False

    def connect(self, ssid=None, key=None, *, bssid=None):
        s = self._s
        if self._i != STA_IF or not s[0]:
            raise OSError('STA must be active')
        ssid = _str(ssid)
        s[1] = ssid
        s[2] = ticks_ms()
        s[3] = _h.wifi_check(ssid, _str(key or ''))
        s[4] = True

    def disconnect(self):
        self._s[4] = False

    def status(self, param=None):
        if param == 'rssi':
            return -60
        s = self._s
        if self._i == AP_IF or not s[4]:
            return STAT_IDLE
        if ticks_diff(ticks_ms(), s[2]) < (_JOIN_MS if s[3] == 0 else _FAIL_MS):
            return STAT_CONNECTING
        return STAT_GOT_IP if s[3] == 0 else s[3]

    def isconnected(self):
        return self._i == STA_IF and self.status() == STAT_GOT_IP

    def ifconfig(self, cfg=None):
        if cfg is not None:
            return
        if self._i == AP_IF and self._s[0]:
            return ('192.168.4.1', '255.255.255.0', '192.168.4.1', '208.67.222.222')
        if self.isconnected():
            return ('127.0.0.1', '255.255.255.0', '127.0.0.1', '127.0.0.1')
        return ('0.0.0.0', '0.0.0.0', '0.0.0.0', '0.0.0.0')

    def config(self, *args, **kw):
        if kw:
            if 'essid' in kw or 'ssid' in kw:
                self._s[1] = _str(kw.get('essid', kw.get('ssid')))
            return
        p = args[0]
        if p == 'mac':
            u = bytes.fromhex(_h.uid())
            return bytes((0x5c, 0xcf, 0x7f + self._i)) + u[1:]
        if p in ('essid', 'ssid'):
            return self._s[1]
        if p == 'hostname':
            return 'esp-' + _h.uid()[2:]
        raise ValueError('unknown config param')

    def scan(self):
        return [(b'lab', b'\x5c\xcf\x7f\x00\x00\x01', 1, -60, AUTH_WPA2_PSK, False)]


def hostname(name=None):
    return None if name else 'esp-' + _h.uid()[2:]
