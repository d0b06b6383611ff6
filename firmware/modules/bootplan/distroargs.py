"""The kernel arguments a distro's own GRUB would pass, for a disk kernel without a BLS entry (portable).

In order, the first that has something for the chosen kernel wins:
1. the `linux` line of GRUB's generated config (/boot/grub/grub.cfg, /boot/grub2/grub.cfg; /grub/... on a
   separate /boot) whose path names the kernel: exactly what GRUB passes, `$var` and `${var}` expanded from the
   `set` lines before it (unset ones are empty, as in GRUB);
2. what grub-mkconfig would write: `root=UUID=<fs> ro` + GRUB_CMDLINE_LINUX + GRUB_CMDLINE_LINUX_DEFAULT from
   /etc/default/grub then /etc/default/grub.d/*.cfg (shell quoting, `$VAR` expansion, the last assignment wins);
3. /etc/kernel/cmdline (systemd's kernel-install), `root=UUID=<fs> ro` put first when it names no root=.
Files are read up to MAX_FILE bytes and values kept to MAX_VALUE characters: a hostile disk cannot make the
firmware loop or allocate without bound. Works on any filesystem object with listdir/exists/open.
"""

MAX_FILE = 1 << 20
MAX_VALUE = 4096
GRUB_CFGS = ("/boot/grub/grub.cfg", "/boot/grub2/grub.cfg", "/grub/grub.cfg", "/grub2/grub.cfg")
LINUX_COMMANDS = ("linux", "linuxefi", "linux16")
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"


def _text(fs, path):
    """The file's text (None when absent, unreadable or too big)."""
    try:
        if not fs.exists(path):
            return None
        data = fs.open(path).read(MAX_FILE + 1)  # never more than the bound, whatever the file's size
    except Exception:  # noqa: BLE001 - an unreadable file gives no arguments; the next source is tried
        return None
    if len(data) > MAX_FILE:
        return None
    return bytes(data).decode("utf-8", "replace")


def _var(text, i, env):
    """Expand the `$NAME` or `${NAME}` at text[i] ('$'): (value, next index). A '$' starting nothing is kept."""
    j = i + 1
    if j < len(text) and text[j] == "{":
        end = text.find("}", j)
        if end < 0:
            return "$", j
        return env.get(text[j + 1:end], ""), end + 1
    while j < len(text) and text[j] in _NAME_CHARS:
        j += 1
    if j == i + 1:
        return "$", j
    return env.get(text[i + 1:j], ""), j


def commands(text, env):
    """(line, words) for each command of a shell or GRUB script: blanks split words, `#` comments, newline or
    `;` ends a command; '...' is literal, "..." and bare text expand `$NAME`/`${NAME}` from `env` as it is when
    the command is reached (the caller may assign between commands), `\\` escapes. A word that expands to
    nothing unquoted is dropped, as the shell does."""
    i, n, line = 0, len(text), 1
    words, start = [], 1
    while i < n:
        c = text[i]
        if c in " \t\r":
            i += 1
            continue
        if c == "\n" or c == ";":
            line += c == "\n"
            if words:
                yield start, words
                words = []
            i += 1
            continue
        if c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if not words:
            start = line
        out, quoted = [], False
        while i < n and text[i] not in " \t\r\n;":
            c = text[i]
            if c == "'":
                end = text.find("'", i + 1)
                end = n if end < 0 else end
                out.append(text[i + 1:end])
                line += text.count("\n", i, end)
                i, quoted = end + 1, True
            elif c == '"':
                i, quoted = i + 1, True
                while i < n and text[i] != '"':
                    if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\$\n':
                        line += text[i + 1] == "\n"
                        out.append("" if text[i + 1] == "\n" else text[i + 1])
                        i += 2
                    elif text[i] == "$":
                        value, i = _var(text, i, env)
                        out.append(value)
                    else:
                        line += text[i] == "\n"
                        out.append(text[i])
                        i += 1
                i += 1
            elif c == "\\" and i + 1 < n:
                line += text[i + 1] == "\n"
                out.append("" if text[i + 1] == "\n" else text[i + 1])
                i += 2
            elif c == "$":
                value, i = _var(text, i, env)
                if _splits(words, out):
                    out = _split_value(value, words, out)
                else:
                    out.append(value)
            else:
                out.append(c)
                i += 1
        word = "".join(out)[:MAX_VALUE]
        if word or quoted:
            words.append(word)
    if words:
        yield start, words


def _splits(words, out):
    """Whether an unquoted expansion here splits at blanks: everywhere but the value of an assignment."""
    return not ("=" in "".join(out) and (not words or words in (["set"], ["export"])))


def _split_value(value, words, out):
    """An unquoted expansion's blanks end words (GRUB's `$kernelopts`, Ubuntu's `$vt_handoff` rely on it):
    completed words go to `words`; returns the pieces of the word still being built."""
    parts = value.split()
    blanks = " \t\n"
    if value[:1] in blanks or not parts:
        if out and (parts or value):
            words.append("".join(out)[:MAX_VALUE])
            out = []
    if not parts:
        return out
    if value[:1] not in blanks:
        out.append(parts.pop(0))
        if parts or value[-1:] in blanks:
            words.append("".join(out)[:MAX_VALUE])
            out = []
    for part in parts:
        words.append(part[:MAX_VALUE])
    if parts and value[-1:] not in blanks:
        out = [words.pop()]
    return out


def _assignment(word):
    """(name, value) when `word` is NAME=value, else None."""
    eq = word.find("=")
    if eq <= 0 or word[0] in "0123456789":
        return None
    for ch in word[:eq]:
        if ch not in _NAME_CHARS:
            return None
    return word[:eq], word[eq + 1:]


def _join(words):
    """Arguments as one command line; a word with blanks is double-quoted (as GRUB does for the kernel)."""
    out = []
    for w in words:
        out.append('"%s"' % w if (" " in w or "\t" in w) else w)
    return " ".join(w for w in out if w)


def _basename(path):
    return path.rsplit("/", 1)[-1]


def from_grub_cfg(fs, kernel):
    """(arguments, source) from the `linux` line of GRUB's config that boots `kernel`, or None."""
    want = _basename(kernel)
    for path in GRUB_CFGS:
        text = _text(fs, path)
        if text is None:
            continue
        env, title = {}, ""
        for line, words in commands(text, env):
            head = words[0]
            if head == "set" and len(words) > 1:
                pair = _assignment(words[1])
                if pair:
                    env[pair[0]] = pair[1]
            elif _assignment(head) and len(words) == 1:
                name, value = _assignment(head)
                env[name] = value
            elif head in ("menuentry", "submenu") and len(words) > 1:
                title = words[1]
            elif head in LINUX_COMMANDS and len(words) > 1:
                target = words[1]
                if target.startswith("("):  # (hd0,gpt2)/vmlinuz-... : the device is GRUB's business
                    target = target[target.find(")") + 1:]
                if _basename(target) == want:
                    where = "%s line %d" % (path, line) + (" (menuentry %r)" % title if title else "")
                    return _join(words[2:]), where
    return None


def _default_grub_files(fs):
    out = ["/etc/default/grub"]
    try:
        names = sorted(n for n in fs.listdir("/etc/default/grub.d") if n.endswith(".cfg"))
    except Exception:  # noqa: BLE001 - no grub.d directory
        names = []
    return out + ["/etc/default/grub.d/" + n for n in names]


def from_default_grub(fs, root):
    """(arguments, source) as grub-mkconfig builds them from /etc/default/grub (+ grub.d/*.cfg), or None."""
    env, used = {}, []
    for path in _default_grub_files(fs):
        text = _text(fs, path)
        if text is None:
            continue
        used.append(path)
        for _, words in commands(text, env):
            if words[0] == "export":
                words = words[1:]
            pair = _assignment(words[0]) if words else None
            if pair and len(words) == 1:  # `X=1 cmd` sets X for cmd only: not an assignment that stays
                env[pair[0]] = pair[1]
    if not used:
        return None
    args = [root, "ro", env.get("GRUB_CMDLINE_LINUX", ""), env.get("GRUB_CMDLINE_LINUX_DEFAULT", "")]
    return " ".join(a for a in args if a), " + ".join(used)


def from_kernel_cmdline(fs, root):
    """(arguments, source) from /etc/kernel/cmdline, or None."""
    text = _text(fs, "/etc/kernel/cmdline")
    if text is None:
        return None
    args = " ".join(text.split())
    if not args:
        return None
    if not any(w.startswith("root=") for w in args.split()):
        args = "%s ro %s" % (root, args)
    return args, "/etc/kernel/cmdline"


def find(fs, kernel, root):
    """(arguments, source) for `kernel` on `fs`, `root` (`root=UUID=...`) where GRUB would add one; without
    any of the distro's files: (`root ro`, 'no GRUB config or /etc/kernel/cmdline')."""
    for rule in (lambda: from_grub_cfg(fs, kernel), lambda: from_default_grub(fs, root),
                 lambda: from_kernel_cmdline(fs, root)):
        found = rule()
        if found is not None:
            return found
    return "%s ro" % root, "no GRUB config or /etc/kernel/cmdline"
