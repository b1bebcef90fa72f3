"""Evaluates the part of CEL (the Common Expression Language) that Kubeflow V2 task conditions
use, as TFX compiles tfx.dsl.Cond predicates: ``inputs.artifacts['k'].artifacts[0]``, member
access (``.uri``) and ``.metadata['key']``, literals, ``+``, comparisons, ``!``, ``&&``, ``||``
and parentheses. Anything else raises, so an unsupported condition never passes silently.
"""

import re

_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+\.\d*|\d*\.\d+|\d+)|(?P<string>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r'|(?P<name>[A-Za-z_]\w*)|(?P<op>==|!=|<=|>=|&&|\|\||[<>!+\[\]().]))'
)
_COMPARISONS = {
    '==': lambda a, b: a == b,
    '!=': lambda a, b: a != b,
    '<': lambda a, b: a < b,
    '>': lambda a, b: a > b,
    '<=': lambda a, b: a <= b,
    '>=': lambda a, b: a >= b,
}


def evaluate(expression: str, variables: dict):
    parser = _Parser(_tokens(expression), variables)
    value = parser.disjunction()
    if parser.peek() is not None:
        raise ValueError(f'CEL: unexpected {parser.peek()!r} in {expression!r}')
    return value


def _tokens(expression):
    tokens, position = [], 0
    while position < len(expression.rstrip()):
        match = _TOKEN.match(expression, position)
        if not match:
            raise ValueError(f'CEL: cannot read {expression[position:]!r}')
        kind = match.lastgroup
        text = match[kind]
        if kind == 'number':
            tokens.append(('value', float(text) if '.' in text else int(text)))
        elif kind == 'string':
            tokens.append(('value', text[1:-1].encode().decode('unicode_escape')))
        elif kind == 'name' and text in ('true', 'false'):
            tokens.append(('value', text == 'true'))
        else:
            tokens.append((kind, text))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens, variables):
        self.tokens = tokens
        self.position = 0
        self.variables = variables

    def peek(self):
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def take(self, expected=None):
        if self.position >= len(self.tokens):
            raise ValueError('CEL: unexpected end of expression')
        kind, text = self.tokens[self.position]
        if expected is not None and text != expected:
            raise ValueError(f'CEL: expected {expected!r}, got {text!r}')
        self.position += 1
        return kind, text

    def disjunction(self):
        value = self.conjunction()
        while self.peek() == '||':
            self.take()
            right = self.conjunction()
            value = bool(value) or bool(right)
        return value

    def conjunction(self):
        value = self.comparison()
        while self.peek() == '&&':
            self.take()
            right = self.comparison()
            value = bool(value) and bool(right)
        return value

    def comparison(self):
        value = self.sum()
        if self.peek() in _COMPARISONS:
            _, op = self.take()
            value = _COMPARISONS[op](value, self.sum())
        return value

    def sum(self):
        value = self.unary()
        while self.peek() == '+':
            self.take()
            value = value + self.unary()
        return value

    def unary(self):
        if self.peek() == '!':
            self.take()
            return not self.unary()
        return self.postfix()

    def postfix(self):
        value = self.primary()
        while self.peek() in ('.', '['):
            if self.take()[1] == '.':
                kind, name = self.take()
                if kind != 'name':
                    raise ValueError(f'CEL: expected a field name, got {name!r}')
                value = value[name]
            else:
                _, index = self.take()
                self.take(']')
                value = value[index]
        return value

    def primary(self):
        kind, text = self.take()
        if kind == 'value':
            return text
        if text == '(':
            value = self.disjunction()
            self.take(')')
            return value
        if kind == 'name':
            if text not in self.variables:
                raise ValueError(f'CEL: unknown variable {text!r}')
            return self.variables[text]
        raise ValueError(f'CEL: unexpected {text!r}')
