"""Reading a JSON body of `p1.body` back: its names and value texts (`items`),
where the meter value ends (`cut_of`), a value text as a Python value
(`text_value`).

Used now and then (the general decoder's bodies, MQTT per-value topics, Home
Assistant discovery, status), never per telegram on the device's own path:
kept out of `p1.body`, which is always loaded.
"""


def cut_of(body):
    """Where the meter value ends in a body (the `cut` of `Encoder.encode`)."""
    i = body.find(b'"meter": ') + 9
    if body[i] != 0x22:  # null
        j = body.find(b",", i)
        return j if j > 0 else len(body) - 1
    i += 1
    while body[i] != 0x22:
        i += 2 if body[i] == 0x5C else 1
    return i + 1


def text_value(v):
    """A value text of `items()` -> str for a JSON string (unescaped), None for null,
    else the number text itself (exact digits)."""
    if v == "null":
        return None
    if v[:1] != '"':
        return v
    if "\\" not in v:
        return v[1:-1]
    import json

    return json.loads(v)  # a string literal: exact


def items(body):
    """Yield `(name, value text)` of every reading in a body (value text as in the JSON:
    `896.020`, `"LGF5E360"`, `null`). Bodies are ours: `", "` and `": "` separate."""
    n = len(body)
    i = 1
    while i < n - 1:
        if body[i] != 0x22:
            i += 1
            continue
        k = body.find(b'"', i + 1)
        name = bytes(body[i + 1 : k]).decode()
        v = k + 3
        if body[v] == 0x22:
            j = v + 1
            while True:
                c = body[j]
                if c == 0x5C:
                    j += 2
                elif c == 0x22:
                    break
                else:
                    j += 1
            e = j + 1
        else:
            e = body.find(b",", v)
            if e < 0:
                e = n - 1
        yield name, bytes(body[v:e]).decode()
        i = e + 2
