# The board lab's `network` (ESP8266 MicroPython has it in flash, written in C).
# Station (STA_IF): there is one network to join, the lab's (MicroPythonBoard option
# `wifi`). connect() returns at once; status() is STAT_CONNECTING until the join is done
# after the board's `timing` (wifiJoinMs: then STAT_GOT_IP), or has failed
# (wifiWrongPasswordMs: STAT_WRONG_PASSWORD, wifiNoApMs: STAT_NO_AP_FOUND), on the
# board's own clock. The "network" reached once connected is the host's: ifconfig says
# 127.0.0.1 with netmask 255.0.0.0, the host's loopback, so the subnet's broadcast address
# is 127.255.255.255 (the lab's UDP, micropython-board-udp.ts). The station's settings are
# not saved across resets (a board saves them).
# Access point (AP_IF): its settings are the SDK's, kept in the board's flash by the lab
# (active state, SSID, password, auth mode: saved when they change, as the SDK does);
# after a first boot it is on, named MicroPython-xxxxxx (the MAC's last 3 bytes), with
# the password micropythoN. No station ever joins it (isconnected() is False). As on an
# ESP8266, its password can be set with config() but not read back.
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

# The station: [active, ssid, connect time, outcome (0 ok, 2/3 failure), connecting]
_sta = [False, '', 0, 0, False]


def _str(v):
    return str(v, 'utf-8') if isinstance(v, (bytes, bytearray)) else v


def _ap(active=None, ssid=None, key=None, auth=None):
    # Changes the access point's saved settings (the SDK writes them to its flash).
    _h.ap_set(int(_h.ap_active() if active is None else active), _h.ap_ssid() if ssid is None else ssid,
              _h.ap_key() if key is None else key, _h.ap_auth() if auth is None else auth)


class WLAN:
    def __init__(self, i=STA_IF):
        if i not in (STA_IF, AP_IF):
            raise ValueError()
        self._i = i

    def active(self, v=None):
        if self._i == AP_IF:
            if v is None:
                return bool(_h.ap_active())
            _ap(active=bool(v))
            return
        if v is None:
            return _sta[0]
        _sta[0] = bool(v)
        if not v:
            _sta[4] = False

    def connect(self, ssid=None, key=None, *, bssid=None):
        if self._i != STA_IF:
            raise OSError('STA required')
        if not _sta[0]:
            raise OSError('STA must be active')
        if ssid is not None:
            _sta[1] = _str(ssid)
        _sta[2] = ticks_ms()
        _sta[3] = _h.wifi_check(_sta[1], _str(key or ''))
        _sta[4] = True

    def disconnect(self):
        if self._i != STA_IF:
            raise OSError('STA required')
        _sta[4] = False

    def status(self, param=None):
        if param == 'rssi' and self._i == STA_IF:
            return -60
        if param is not None:
            raise ValueError('unknown status param')
        if self._i == AP_IF:
            return -1
        if not _sta[4]:
            return STAT_IDLE
        if ticks_diff(ticks_ms(), _sta[2]) < _h.wifi_delay(_sta[3]):
            return STAT_CONNECTING
        return STAT_GOT_IP if _sta[3] == 0 else _sta[3]

    def isconnected(self):
        return self._i == STA_IF and self.status() == STAT_GOT_IP

    def ifconfig(self, cfg=None):
        if cfg is not None:
            return
        if self._i == AP_IF:
            if _h.ap_active():
                return ('192.168.4.1', '255.255.255.0', '192.168.4.1', '208.67.222.222')
        elif self.isconnected():
            return ('127.0.0.1', '255.0.0.0', '127.0.0.1', '127.0.0.1')
        return ('0.0.0.0', '0.0.0.0', '0.0.0.0', '0.0.0.0')

    def config(self, *args, **kw):
        if args and kw:
            raise TypeError('either pos or kw args are allowed')
        if kw:
            ap = {}
            for k in kw:
                if k in ('ssid', 'essid'):
                    ap['ssid'] = _str(kw[k])[:32]
                elif k in ('key', 'password'):
                    ap['key'] = _str(kw[k])[:63]
                elif k in ('security', 'authmode'):
                    ap['auth'] = int(kw[k])
                elif k not in ('hidden', 'channel', 'hostname', 'dhcp_hostname', 'pm', 'protocol', 'txpower', 'reconnects'):
                    raise ValueError('unknown config param')
            if ap:
                if self._i != AP_IF:
                    raise OSError('AP required')
                _ap(**ap)
            return
        if len(args) != 1:
            raise TypeError('can query only one param')
        p = args[0]
        if p == 'mac':
            # The softAP's MAC differs from the station's in its first byte (0x5c -> 0x5e).
            return bytes((0x5c + 2 * self._i, 0xcf, 0x7f)) + bytes.fromhex(_h.uid())[1:]
        if p in ('essid', 'ssid'):
            return _h.ap_ssid() if self._i == AP_IF else _sta[1]
        if p in ('security', 'authmode') and self._i == AP_IF:
            return _h.ap_auth()
        if p == 'channel' and self._i == AP_IF:
            return 1
        if p == 'hidden' and self._i == AP_IF:
            return False
        if p in ('hostname', 'dhcp_hostname'):
            return 'esp-' + _h.uid()[2:]
        if p in ('security', 'authmode', 'channel', 'hidden'):
            raise OSError('AP required')
        raise ValueError('unknown config param')

    def scan(self):
        if self._i != STA_IF:
            raise OSError('STA required')
        if not _sta[0]:
            raise OSError('STA must be active')
        return [(b'lab', b'\x5c\xcf\x7f\x00\x00\x01', 1, -60, AUTH_WPA2_PSK, False)]


def hostname(name=None):
    return None if name else 'esp-' + _h.uid()[2:]
