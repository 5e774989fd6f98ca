#!/usr/bin/env python3
"""Regenerates JinjaCases.json: engine feature cases rendered by Python's Jinja2 in the environment transformers
builds for chat templates (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, its tojson,
raise_exception, strftime_now at a fixed time). Run: python3 generate_jinja_cases.py (needs jinja2 3.1)."""
import json
from datetime import datetime

import jinja2
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

FIXED_NOW = datetime(2024, 7, 26, 14, 5, 9)


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return FIXED_NOW.strftime(format)


class AssistantTracker(Extension):
    """transformers' {% generation %} extension (it only marks assistant text; the body renders unchanged)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        call = self.call_method("_generation_support")
        return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now

MSGS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"b": 2, "a": [1, 2.5, None, True]}}}]},
    {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "image"}, {"type": "text", "text": "part two"}]},
]

CASES = [
    # name, template, vars
    ("text", "Hello world", {}),
    ("print-types", "{{ 1 }}|{{ 1.0 }}|{{ 2.5e3 }}|{{ 1e20 }}|{{ 0.1 + 0.2 }}|{{ true }}|{{ none }}|{{ 'x' }}|{{ [1, 'a', none, true, 1.5] }}|{{ {'a': 1, 'b': [2]} }}|{{ (1,) }}|{{ (1, 'b') }}|{{ () }}", {}),
    ("print-repr-quotes", "{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'tab\\tnl\\n', 'uni é 日本 🙂', '\\x00\\x7f'] }}", {}),
    ("print-tuple-expr", "{{ 1, 'a' }}", {}),
    ("float-repr", "{{ [1/3, 10/4, 1e16, 1e15, 0.0001, 0.00001, -0.0, 3.0 * 2, 2**0.5, 7 // 2, -7 // 2, 7 % -3, -7 % 3, 7.5 // 2, 2 ** 10, 2 ** -1] }}", {}),
    ("arith", "{{ 1 + 2 * 3 - 4 / 2 }} {{ (1 + 2) * 3 }} {{ 10 // 3 }} {{ 10 % 3 }} {{ -3 + +2 }} {{ 2 ** 3 ** 2 }} {{ 'ab' * 3 }} {{ [1] * 2 }} {{ [1] + [2] }} {{ 'a' ~ 1 ~ none ~ true }}", {}),
    ("arith-bool", "{{ true + 1 }} {{ false * 3 }} {{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' == 'a' }} {{ [1, 2] == [1, 2] }} {{ (1, 2) == [1, 2] }} {{ {'a': 1, 'b': 2} == {'b': 2, 'a': 1} }} {{ none == none }} {{ undefined_thing == none }}", {}),
    ("compare-chain", "{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 2 >= 2.0 }} {{ 1 != 2 }}", {}),
    ("in-operator", "{{ 'a' in 'cat' }} {{ 'x' not in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'v' in {'k': 'v'} }} {{ 'a' in undefined_thing }}", {}),
    ("logic", "{{ 1 and 'x' }}|{{ 0 and 'x' }}|{{ 0 or '' }}|{{ none or 'd' }}|{{ not 0 }}|{{ not [] }}|{{ not {} }}|{{ not 'a' }}|{{ [] or [1] }}", {}),
    ("truthiness", "{% for v in [0, 1, 0.0, 0.5, '', 'a', [], [0], {}, {'a': 0}, none, true, false] %}{{ 'T' if v else 'F' }}{% endfor %}", {}),
    ("cond-expr", "{{ 'yes' if x else 'no' }} {{ 'a' if y }}|{{ 'a' if not y else 'b' if x else 'c' }}", {"x": True, "y": False}),
    ("whitespace-dash", "a  {{- ' b ' -}}  c\n  {%- if true -%}  d  {%- endif -%}\n  e {#- comment -#}   f", {}),
    ("trim-blocks", "{% if true %}\nline\n{% endif %}\nafter\n{# c #}\nx", {}),
    ("lstrip-blocks", "<ul>\n    {% for i in [1, 2] %}\n    <li>{{ i }}</li>\n    {% endfor %}\n</ul>\n", {}),
    ("lstrip-not-variable", "a\n    {{ 'x' }}\n    {% if true %}y{% endif %}\n\t{# c #}z", {}),
    ("plus-modifier", "a\n    {%+ if true %}b{% endif +%}\nc", {}),
    ("trailing-newline", "line\n", {}),
    ("crlf", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc", {}),
    ("raw", "{% raw %}{{ not rendered }}{% endraw %} and {{ 'rendered' }}", {}),
    ("comment-only", "{# just a comment #}", {}),
    ("string-escapes", "{{ 'a\\nb' }}|{{ \"q\\\"q\" }}|{{ 'u\\u00e9\\x41' }}|{{ 'back\\\\slash' }}|{{ 'keep\\d' }}|{{ 'adj' 'acent' }}", {}),
    ("attr-and-item", "{{ m.role }} {{ m['role'] }} {{ m.missing }}|{{ m.tool_calls[0].function.name }} {{ m.tool_calls[0]['function']['arguments'].a[1] }} {{ items.0 }} {{ items[-1] }} {{ items[10] }}|", {"m": MSGS[2], "items": [1, 2, 3]}),
    ("slices", "{{ s[1:] }} {{ s[:-1] }} {{ s[::-1] }} {{ s[::2] }} {{ l[1:3] }} {{ l[-2:] }} {{ l[::-1] }} {{ l[5:] }} {{ l[:0] }} {{ (1, 2, 3)[1:] }} {{ l[3:0:-1] }}", {"s": "héllo🙂", "l": [1, 2, 3, 4]}),
    ("string-index-unicode", "{{ s[0] }}{{ s[-1] }} {{ s|length }} {{ s|list }}", {"s": "🙂é"}),
    ("messages-slice", "{% for m in messages[1:] %}{{ m.role }},{% endfor %}", {"messages": MSGS}),
    ("loop-vars", "{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.previtem }}{{ loop.nextitem }};{% endfor %}", {}),
    ("loop-cycle-changed", "{% for x in [1, 1, 2, 3, 3] %}{{ loop.cycle('o', 'e') }}{% if loop.changed(x) %}!{% endif %}{% endfor %}", {}),
    ("loop-else", "{% for x in [] %}x{% else %}empty{% endfor %} {% for x in [1] %}{{ x }}{% else %}empty{% endfor %} {% for x in undefined_thing %}x{% else %}undef{% endfor %}", {}),
    ("loop-filter", "{% for x in range(10) if x is odd %}{{ x }}{{ '' if loop.last else ',' }}{% endfor %} {% for m in messages if m.role == 'user' %}{{ loop.index }}/{{ loop.length }} {% endfor %}", {"messages": MSGS}),
    ("loop-unpack", "{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}{% for a, b in [(1, 2), [3, 4]] %}{{ a + b }}{% endfor %}", {}),
    ("loop-dict-keys", "{% for k in {'z': 1, 'a': 2} %}{{ k }}{% endfor %}", {}),
    ("loop-string", "{% for c in 'ab🙂' %}[{{ c }}]{% endfor %}", {}),
    ("break-continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("nested-loops", "{% for i in range(3) %}{% for j in range(i) %}{{ loop.index }}{{ i }}{{ j }} {% endfor %}|{{ loop.index }}{% endfor %}", {}),
    ("scoping", "{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}", {}),
    ("scoping-if", "{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}),
    ("namespace", "{% set ns = namespace(count=0, found=false, items='') %}{% for i in range(4) %}{% set ns.count = ns.count + i %}{% if i == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.count }} {{ ns.found }} {{ ns.missing }}|", {}),
    ("set-block", "{% set greeting %}Hello {{ name }}!{% endset %}[{{ greeting }}]{% set up | upper %}shout{% endset %}{{ up }}", {"name": "Bob"}),
    ("set-tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c, d = [3, 4] %}{{ c + d }}", {}),
    ("with", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]", {}),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(name='C', punct='.') }} {{ greet() }}", {}),
    ("macro-varargs", "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, x=4) }}", {}),
    ("macro-recursion", "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% endif %}{% endmacro %}{{ fact(5) }}", {}),
    ("call-block", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold {{ 1 + 1 }}{% endcall %}", {}),
    ("call-block-args", "{% macro each(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(x) each([1, 2]) %}<{{ x }}>{% endcall %}", {}),
    ("filter-block", "{% filter upper %}hello {{ 'world' }}{% endfilter %}", {}),
    ("tests", "{{ x is defined }}{{ y is defined }}{{ y is undefined }}{{ none is none }}{{ 'a' is string }}{{ {} is mapping }}{{ [] is mapping }}{{ [] is iterable }}{{ 'a' is iterable }}{{ 1 is iterable }}{{ [] is sequence }}{{ 1 is number }}{{ 1.5 is number }}{{ true is number }}{{ 1 is integer }}{{ 1.0 is integer }}{{ true is integer }}{{ 1.0 is float }}{{ true is boolean }}{{ true is true }}{{ 1 is true }}{{ false is false }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 'a' is equalto 'a' }}{{ 2 is eq 2 }}{{ 3 is gt 2 }}{{ 3 is lt 2 }}{{ 2 is in [1, 2] }}{{ 'A' is upper }}{{ 'a' is lower }}{{ x is not none }}{{ range is callable }}{{ none is sameas none }}", {"x": 1}),
    ("test-precedence", "{{ not x is defined }} {{ x is not defined }} {{ 1 + 1 is odd }} {{ x is equalto 1 and true }}", {"x": 1}),
    ("filters-string", "{{ '  hi  '|trim }}|{{ 'xxhixx'|trim('x') }}|{{ 'hello world'|upper }}|{{ 'HeLLo'|lower }}|{{ 'hello big-world (x)'|title }}|{{ 'hELLO wORLD'|capitalize }}|{{ 'a-b-c'|replace('-', '+') }}|{{ 'aaa'|replace('a', 'b', 2) }}|{{ 'abc'|center(9) }}|{{ 'one two  three'|wordcount }}|{{ '<a href=\"x\">&</a>'|e }}|{{ 'x'|safe }}|{{ 42|string }}|{{ 'abc'|reverse }}|{{ 'hello world foo bar'|truncate(9) }}|{{ 'Hello World'|truncate(7, true) }}", {}),
    ("filters-indent", "{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(width='--', blank=true) }}", {}),
    ("filters-numbers", "{{ '42'|int }} {{ '4.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ '0x1A'|int(0, 16) }} {{ '2.5'|float }} {{ 'y'|float }} {{ 3|float }} {{ -5|abs }} {{ -2.5|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.1|round(method='ceil') }} {{ 2.9|round(0, 'floor') }} {{ 42|round }}", {}),
    ("filters-seq", "{{ [3, 1, 2]|first }} {{ [3, 1, 2]|last }} {{ [3, 1, 2]|length }} {{ 'abc'|count }} {{ {'a': 1}|length }} {{ [3, 1, 2]|sort }} {{ [3, 1, 2]|sort(reverse=true) }} {{ ['b', 'A', 'c']|sort }} {{ ['b', 'A', 'c']|sort(case_sensitive=true) }} {{ [1, 2, 1, 3, 2]|unique|list }} {{ ['a', 'A', 'b']|unique|list }} {{ [1, 2, 3]|sum }} {{ [1, 5, 3]|max }} {{ [4, 2, 9]|min }} {{ [1, 2]|reverse|list }} {{ 'ab'|list }} {{ [1, [2]]|list }}", {}),
    ("filters-join", "{{ [1, 2, 3]|join(', ') }} {{ ['a', 'b']|join }} {{ users|join(', ', attribute='name') }} {{ users|map(attribute='name')|join('/') }} {{ users|map(attribute='age', default=0)|list }} {{ ['a', 'b']|map('upper')|list }} {{ ['x', 'yy']|map('length')|list }}", {"users": [{"name": "ann", "age": 3}, {"name": "bob"}]}),
    ("filters-select", "{{ [1, 2, 3, 4]|select('odd')|list }} {{ [1, 2, 3, 4]|reject('odd')|list }} {{ [0, 1, '', 'a', none]|select|list }} {{ [1, 2, 3]|select('gt', 1)|list }} {{ users|selectattr('admin')|map(attribute='name')|list }} {{ users|rejectattr('admin')|map(attribute='name')|list }} {{ users|selectattr('name', 'equalto', 'bob')|list }} {{ ['code_interpreter', 'brave_search']|reject('equalto', 'code_interpreter')|join(', ') }}", {"users": [{"name": "ann", "admin": True}, {"name": "bob", "admin": False}, {"name": "cy"}]}),
    ("filters-dict", "{{ d|items|list }} {{ d|dictsort }} {{ d|dictsort(by='value') }} {{ d|dictsort(reverse=true) }} {% for k, v in d|items %}{{ k }}{{ v }}{% endfor %} {{ undefined_thing|items|list }}", {"d": {"b": 1, "a": 3, "C": 2}}),
    ("filters-default", "{{ x|default('dflt') }} {{ y|default('dflt') }} {{ none|default('dflt') }} {{ ''|default('dflt', true) }} {{ y|d('short') }} {{ 0|d(5, boolean=true) }}", {"x": "val"}),
    ("filters-batch-slice", "{{ [1, 2, 3, 4, 5]|batch(2)|list }} {{ [1, 2, 3]|batch(2, 'x')|list }} {{ [1, 2, 3, 4, 5]|slice(2)|list }}", {}),
    ("filters-groupby", "{% for g, items in people|groupby('city') %}{{ g }}:{{ items|map(attribute='n')|join(',') }};{% endfor %}", {"people": [{"n": "a", "city": "X"}, {"n": "b", "city": "Y"}, {"n": "c", "city": "X"}]}),
    ("filters-format", "{{ '%s is %d years, %.2f%%'|format('Ann', 30, 99.5) }} {{ '%5s|%-5s|%05d'|format('a', 'b', 42) }} {{ '%(x)s-%(y)r'|format(x=1, y='z') }} {{ 'v=%s' % 5 }} {{ '%s+%s' % (1, 2) }}", {}),
    ("tojson", "{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ [1, [], {}]|tojson(indent=2) }}|{{ 'é\"\\n\\u0001'|tojson }}|{{ 'é'|tojson(ensure_ascii=true) }}|{{ d|tojson(sort_keys=true) }}|{{ d|tojson(separators=(',', ':')) }}|{{ [1.0, 2.5, none, true, 3]|tojson }}|{{ (1, 2)|tojson }}", {"d": {"z": 1, "a": [1, {"k": None}], "m": "x"}}),
    ("tojson-indent-string", "{{ {'a': [1]}|tojson(indent='\\t') }}", {}),
    ("tojson-messages", "{{ messages|tojson }}", {"messages": MSGS}),
    ("string-methods", "{{ ' a b '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  a'.lstrip() }}|{{ 'a  '.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'ab'.upper() }}|{{ 'AB'.lower() }}|{{ 'hello world'.title() }}|{{ 'hello'.capitalize() }}|{{ 'aXa'.replace('a', 'b') }}|{{ 'abcb'.find('b') }}|{{ 'abcb'.rfind('b') }}|{{ 'abcb'.count('b') }}|{{ '-'.join(['a', 'b']) }}|{{ 'a\\nb\\r\\nc'.splitlines() }}|{{ '42'.isdigit() }}|{{ 'ab'.isalpha() }}|{{ '5'.zfill(3) }}|{{ 'x'.ljust(3) }}.|{{ 'x'.rjust(3) }}|{{ 'a<b'.partition('<') }}|{{ 'pre_x'.removeprefix('pre_') }}|{{ '{} and {name}'.format(1, name='n') }}", {}),
    ("think-split", "{% set content = c %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1].lstrip() %}{% endif %}[{{ content }}]", {"c": "<think>reasoning</think>\n\nanswer"}),
    ("dict-methods", "{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }} {{ d['items'] is defined }}", {"d": {"a": 1, "b": 2}}),
    ("dict-literal-and-builtins", "{{ dict(a=1, b='x') }} {{ dict({'z': 1}, y=2) }} {{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }} {{ namespace(a=1).a }}", {}),
    ("content-parts", "{% for m in messages %}{% if m.content is string %}{{ m.content }}{% else %}{% for p in m.content %}{% if p.type == 'text' %}{{ p.text }}{% elif p.type == 'image' %}<img>{% endif %}{% endfor %}{% endif %}|{% endfor %}", {"messages": MSGS}),
    ("strftime", "{{ strftime_now('%d %b %Y') }} {{ strftime_now('%Y-%m-%d %H:%M:%S') }} {{ strftime_now('%A %B %-d %I%p %j') }}", {}),
    ("undefined-print", "[{{ nothing }}][{{ nothing|length }}][{{ nothing|trim }}][{{ nothing|upper }}][{{ nothing ~ 'x' }}][{{ nothing|join(',') }}][{{ nothing|list }}][{{ nothing is none }}][{{ none|string }}]", {}),
    ("undefined-attr-of-missing-key", "[{{ m.nope }}][{{ m.nope is defined }}][{{ m['nope'] }}][{{ none.x }}][{{ 'abc'.nope }}]", {"m": {"a": 1}}),
    ("generation-block", "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.role }}{% endif %};{% endfor %}", {"messages": MSGS}),
    ("joiner", "{% set comma = joiner(', ') %}{% for x in [1, 2, 3] %}{{ comma() }}{{ x }}{% endfor %}", {}),
    ("reassign-messages", "{% if messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] %}{% set messages = messages[1:] %}{% else %}{% set sys = '' %}{% endif %}{{ sys }}|{{ messages|length }}|{% for m in messages %}{{ m.role }}{% endfor %}", {"messages": MSGS}),
    ("int-key-dict", "{{ {1: 'a', 2.0: 'b'}[1] }}{{ {1: 'a'}[1.0] }}{{ {true: 'yes'}[1] }}", {}),
    ("unicode-methods", "{{ 'ÉCOLE'.lower() }} {{ 'straße'.upper() }} {{ '日本語'|length }} {{ 'Ünïcödé'|title }}", {}),
    ("nested-data-print", "{{ m }}", {"m": MSGS[2]}),
    ("add-list-ops", "{% set l = [1] + [2] %}{{ l }}{% set l = l + [3] %}{{ l|length }}{{ l[1:]|sum }}", {}),
    ("filter-precedence", "{{ 'a' + ' b '|trim }}|{{ -2|abs }}|{{ 1 + 2|string }}", {}),
    # Scoping and edge cases
    ("loop-scope-per-iteration", "{% for i in range(3) %}[{{ x }}]{% set x = i %}{% endfor %}[{{ x }}]", {}),
    ("loop-scope-outer-value", "{% set x = 'o' %}{% for i in range(2) %}{{ x }}{% set x = i %}{{ x }}{% endfor %}{{ x }}", {}),
    ("loop-outer-via-set", "{% for a in 'xy' %}{% set outer = loop %}{% for b in [1, 2] %}{{ outer.index }}{{ loop.index }} {% endfor %}{% endfor %}", {}),
    ("loop-outside", "[{{ loop }}][{{ loop is defined }}]", {}),
    ("macro-sees-later-globals", "{% set x = 5 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 6 %}{{ m() }}", {}),
    ("macro-caller-nested", "{% macro outer() %}[{{ caller('a') }}]{% endmacro %}{% macro inner(v) %}<{{ v }}>{% endmacro %}{% call(x) outer() %}{{ inner(x) }}{% endcall %}", {}),
    ("ws-lstrip-midline", "a {% if true %}b{% endif %} c\n  {% if true %}d{% endif %}", {}),
    ("ws-tabs", "x\n\t \t{% if true %}\n\ty\n\t{% endif %}\nz", {}),
    ("ws-dash-multiline", "a\n\n   {%- if true %}\n\n   b   \n   {%- endif %}\n\n c", {}),
    ("ws-dash-after", "{% if true -%}\n\n   x{%- endif -%}   \n\n y", {}),
    ("ws-comment-middle", "a\n  {#- c -#}\n  b\n  {# c2 #}\n  c", {}),
    ("ws-raw-dash", "a  {%- raw -%}  {{ x }}  {%- endraw -%}  b", {}),
    ("ws-var-dash-only", "a\n  {{- 'b' }}\n  {{ 'c' -}}\n  d", {}),
    ("ws-two-newlines-after-block", "{% if true %}\n\nx{% endif %}", {}),
    ("ws-block-at-end", "x\n{% if true %}{% endif %}\n", {}),
    ("cond-no-else", "[{{ 'a' if 0 }}][{{ ('a' if 0) is defined }}]", {}),
    ("true-and-none", "{{ true and none }} {{ none or false }} {{ 0 or 0.0 }}", {}),
    ("int-of-floats", "{{ 1.5|int }} {{ -1.5|int }} {{ '%d' % 3.7 }} {{ '%.1f'|format(2) }} {{ 10 / 4|round }}", {}),
    ("float-edge", "{{ 0.1 * 3 }} {{ 1e300 * 1e10 }} {{ -1e300 * 1e10 }} {{ 123456789.123456789 }} {{ 1/7 }} {{ 5e-324 }} {{ 1.7976931348623157e308 }}", {}),
    ("dict-copy-merge", "{% set d = {'a': 1} %}{% set d2 = dict(d, b=2) %}{{ d2 }} {{ d }}", {}),
    ("tuple-join-sort", "{{ ('a', 'b')|join('-') }} {{ [3, 1]|sort|first }} {{ 'abc'[::-1] }} {{ (1, 2, 3)[-1] }} {{ 'Hello'[1:3] }}", {}),
    ("default-none", "{{ x|default(none) is none }} {{ range(3)|reverse|list }}", {}),
    ("nested-cond", "{{ 1 if true else 2 if false else 3 }} {{ 1 if false else 2 if false else 3 }}", {}),
    ("braces-in-strings", "{{ '{{' }} {{ \"}}\" }} {{ '{% raw %}' }} {{ {'a': {'b': 1}} }} {{ {'a': 1}.a }} {{ {0: 'zero'}[0] }}", {}),
    ("map-string", "{{ [1, 2]|map('string')|join(',') }} {{ 5|string|length }} {{ 'x' * -1 }}|", {}),
    ("for-else-ws", "{%- for x in [] -%}{{ x }}{%- else -%} none {%- endfor %}!", {}),
    ("selectattr-in", "{{ messages|selectattr('role', 'in', ['user', 'system'])|list|length }} {{ messages|map(attribute='role')|unique|list }}", {"messages": MSGS}),
    ("content-nested-index", "{{ messages[3].content[0].text }} {{ messages[3]['content'][-1]['text'] }}", {"messages": MSGS}),
    ("string-concat-unicode", "{{ 'é' + '日本' ~ 1 }} {{ ('ab' ~ 'c')|upper }}", {}),
    ("divisibleby-call", "{{ 7 is divisibleby(3) }} {{ 9 is divisibleby(3) }} {{ 7 is not divisibleby 7 }}", {}),
    ("test-on-attr", "{{ m.tool_calls is defined }} {{ m.content is string }} {{ m.tool_calls[0].function.arguments is mapping }} {{ m.nope is not defined }}", {"m": MSGS[2]}),
    ("is-none-vs-undefined", "{{ x is none }} {{ y is none }} {{ x is defined }}", {"x": None}),
    ("error-undefined-attr-test", "{{ nothing.y is defined }}", {}),
    ("error-none-length", "{{ none|length }}", {}),
    ("error-split-filter", "{{ 'a,b'|split(',') }}", {}),
    ("error-tool-args-concat", "{{ '```json\\n' + args + '\\n```' }}", {"args": {"city": "Paris"}}),
    ("error-list-plus-tuple", "{{ [1] + (2,) }}", {}),
    ("error-undefined-minus", "{{ -nothing }}", {}),
    ("error-undefined-iter-attr", "{% for x in nothing.items() %}{% endfor %}", {}),
    ("error-macro-in-loop-raise", "{% macro check(m) %}{% if m.role not in ['user', 'assistant'] %}{{ raise_exception('bad role ' ~ m.role) }}{% endif %}{% endmacro %}{% for m in messages %}{{ check(m) }}{% endfor %}", {"messages": MSGS}),
    ("pprint-sorts-dicts", "{{ d|pprint }} {{ [d, 'x']|pprint }}", {"d": {"z": 1, "a": {"y": None, "b": [2, 1]}}}),
    ("percent-format-mapping-args", "{{ 'plain' % {'k': 1} }} {{ 'plain' % [1, 2] }} {{ '%(a)s' % {'a': 'A'} }}", {}),
    ("callable-undefined", "{{ nothing is callable }} {{ range is callable }} {{ 'x' is callable }}", {}),
    ("error-float-overflow", "{{ 3.0 ** 1000 }}", {}),
    ("error-unhashable-in", "{{ [1] in {'a': 1} }}", {}),
    ("error-unique-dicts", "{{ [{'a': 1}, {'a': 1}]|unique|list }}", {}),
    ("set-block-scope", "{% set x = 1 %}{% set y %}{% set x = 2 %}{{ x }}{% endset %}{{ y }}{{ x }}", {}),
    ("comment-begin-at-end", "text {#", {}),
    ("error-slice-bool", "{{ flag[1:] }}", {"flag": True}),
    ("error-slice-undefined", "{{ nothing[1:] }}", {}),
    ("error-slice-undefined-bound", "{{ 'abc'[nothing:] }}", {}),
    ("error-replace-undefined", "{{ 'abc'.replace('a', nothing) }}", {}),
    ("lexical-error-after-syntax-error", "{{ 1 + }}\n{{ 'unterminated }}", {}),
    ("for-else-scope", "{% set x = 1 %}{% for i in [] %}{% else %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}", {}),
    ("for-else-unknown-filter-in-if", "{% if false %}{% for i in [] %}{% else %}{{ i|nosuch }}{% endfor %}{% endif %}", {}),
    # Unknown filters and tests: compile errors, except inside {% if %} / inline if, where they fail only when run.
    ("unknown-filter-in-dead-if", "{% if false %}{{ x|nosuch }}{% elif false %}{{ x is nosuchtest }}{% endif %}ok", {}),
    ("unknown-filter-in-dead-inline-if", "{{ x|nosuch if false else 'y' }}{{ 'z' if true else x|nosuch }}", {}),
    ("unknown-filter-if-in-loop", "{% for i in [1] %}{% if false %}{{ i|nosuch }}{% endif %}{{ i }}{% endfor %}", {}),
    ("error-unknown-filter-run", "{% if true %}{{ x|nosuch }}{% endif %}", {}),
    ("error-unknown-filter-loop-in-if", "{% if false %}{% for i in [1] %}{{ i|nosuch }}{% endfor %}{% endif %}", {}),
    ("error-unknown-after-syntax", "{{ x|nosuch }}{% if %}", {}),
    # Errors
    ("error-raise", "{{ raise_exception('Bad role: ' + role) }}", {"role": "tool"}),
    ("error-raise-in-loop", "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% endfor %}", {"messages": MSGS}),
    ("error-str-plus-dict", "{{ 'a' + d }}", {"d": {"x": 1}}),
    ("error-str-plus-int", "{{ 'a' + 1 }}", {}),
    ("error-int-plus-str", "{{ 1 + 'a' }}", {}),
    ("error-undefined-attr", "{{ nothing.attr }}", {}),
    ("error-undefined-item", "{{ nothing['k'] }}", {}),
    ("error-undefined-missing-key-chain", "{{ m.nope.deeper }}", {"m": {"a": 1}}),
    ("error-undefined-call", "{{ nothing() }}", {}),
    ("error-undefined-add", "{{ nothing + 1 }}", {}),
    ("error-undefined-compare", "{{ nothing < 1 }}", {}),
    ("error-compare-types", "{{ 'a' < 1 }}", {}),
    ("error-list-append", "{% set l = [] %}{{ l.append(1) }}", {}),
    ("error-dict-update", "{% set d = {} %}{{ d.update({'a': 1}) }}", {}),
    ("error-div-zero", "{{ 1 / 0 }}", {}),
    ("error-int-div-zero", "{{ 1 // 0 }}", {}),
    ("error-not-callable", "{{ 'abc'() }}", {}),
    ("error-tojson-undefined", "{{ nothing|tojson }}", {}),
    ("error-ns-assign-non-namespace", "{% set x = 1 %}{% set x.a = 2 %}", {}),
    ("error-unpack", "{% for a, b in [[1, 2, 3]] %}{% endfor %}", {}),
    ("error-range-too-big", "{{ range(1000000)|length }}", {}),
    ("error-iterate-int", "{% for x in 5 %}{% endfor %}", {}),
    ("error-none-iter", "{% for x in none %}{% endfor %}", {}),
    ("error-items-non-mapping", "{{ [1]|items|list }}", {}),
    ("error-join-nonstring", "{{ ', '.join([1, 2]) }}", {}),
    # Syntax errors
    ("syntax-unclosed-if", "line1\n{% if true %}\nx", {}),
    ("syntax-unknown-tag", "a\n\n{% frobnicate %}", {}),
    ("syntax-unknown-filter", "{{ x|nosuchfilter }}", {}),
    ("syntax-unknown-test", "{{ x is nosuchtest }}", {}),
    ("syntax-bad-expr", "ok\n{{ 1 + }}", {}),
    ("syntax-unclosed-var", "{{ x ", {}),
    ("syntax-unclosed-string", "{{ 'abc }}", {}),
    ("syntax-endfor-mismatch", "{% for x in y %}{% endif %}", {}),
    ("syntax-do-tag", "{% do x %}", {}),
    ("syntax-unbalanced", "{{ (1 + 2 }}", {}),
    ("syntax-unclosed-comment", "{# never closed", {}),
]


def render(template, variables):
    try:
        compiled = env.from_string(template)
    except jinja2.TemplateSyntaxError as e:
        return {"error": {"type": type(e).__name__, "message": e.message, "line": e.lineno, "kind": "Syntax"}}
    try:
        return {"output": compiled.render(**variables)}
    except jinja2.exceptions.TemplateError as e:
        kind = "RaisedByTemplate" if type(e) is jinja2.exceptions.TemplateError else "Runtime"
        return {"error": {"type": type(e).__name__, "message": str(e), "kind": kind}}
    except Exception as e:  # TypeError, ZeroDivisionError, OverflowError...
        return {"error": {"type": type(e).__name__, "message": str(e), "kind": "Runtime"}}


cases = []
for name, template, variables in CASES:
    case = {"name": name, "template": template, "variables": variables}
    case.update(render(template, variables))
    cases.append(case)

with open("JinjaCases.json", "w", encoding="utf-8") as f:
    json.dump({"jinja2": jinja2.__version__, "now": FIXED_NOW.isoformat(), "cases": cases}, f, ensure_ascii=False, indent=1)
    f.write("\n")
print(len(cases), "cases")
