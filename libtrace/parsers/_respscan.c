/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The Redis parser's two fast readers, compiled: a command as clients send it
 * (an array of bulk strings) and a simple string, error or bulk string reply.
 *
 * Theory of operation: libtrace/parsers/_redis.py's _command_python() and
 * _reply_python() read the common messages byte by byte and give up (None)
 * on anything else, which the general RESP reader then decides.  These are
 * the same functions in C, not a second design: the same checks in the same
 * order, the same None, the same words (UTF-8 with replacement characters,
 * clipped to the field limit with an ellipsis).  Compiled by mypyc, the
 * Python readers still cost ~3 700 instructions per command, a fifth of a
 * Redis record (callgrind of benchmarks/records.py's replay); most of it is
 * per-byte indexing and the int objects of the arithmetic.  The limits come
 * from the caller (parsers/_limits.py is their one place), and
 * tests/parsers/test_resp_native.py holds each reader to its Python twin.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *simple_string, *error, *bulk_string, *ellipsis;

/* The decimal number of at most `digits` digits at buf[pos], followed by CRLF:
 * its value, with *next past the CRLF; -1 for anything else. */
static Py_ssize_t number(const unsigned char *buf, Py_ssize_t size, Py_ssize_t pos,
			 Py_ssize_t digits, Py_ssize_t *next)
{
	Py_ssize_t end = pos + digits < size ? pos + digits : size;
	Py_ssize_t value = 0, i = pos;

	while (i < end && buf[i] >= '0' && buf[i] <= '9') {
		value = value * 10 + (buf[i] - '0');
		i++;
	}
	if (i == pos || i + 1 >= size || buf[i] != '\r' || buf[i + 1] != '\n')
		return -1;
	*next = i + 2;
	return value;
}

/* A word as records show it: _redis._word(). */
static PyObject *word(const unsigned char *start, Py_ssize_t length, Py_ssize_t max_text)
{
	PyObject *text, *cut, *clipped;
	unsigned char high = 0;

	for (Py_ssize_t i = 0; i < length; i++)
		high |= start[i];
	if (high < 0x80 && length <= max_text) {
		/* ASCII, as nearly every word is: the string is its bytes (the
		 * decoder's own checks and over-allocation cost several times more). */
		text = PyUnicode_New(length, 127);
		if (text != NULL)
			memcpy(PyUnicode_DATA(text), start, length);
		return text;
	}
	/* "replace" gives what strict decoding gives wherever that succeeds. */
	text = PyUnicode_DecodeUTF8((const char *)start, length, "replace");
	if (text == NULL || PyUnicode_GET_LENGTH(text) <= max_text)
		return text;
	cut = PyUnicode_Substring(text, 0, max_text - 1);
	Py_DECREF(text);
	if (cut == NULL)
		return NULL;
	clipped = PyUnicode_Concat(cut, ellipsis);
	Py_DECREF(cut);
	return clipped;
}

/* The arguments (data: bytes, base, limits: a tuple of three ints), checked:
 * the readers index the data without further checks. */
static int arguments(PyObject *const *args, Py_ssize_t nargs, const char *name,
		     const unsigned char **data, Py_ssize_t *size, Py_ssize_t *base,
		     Py_ssize_t *limits)
{
	if (nargs != 3 || !PyBytes_Check(args[0]) || !PyTuple_Check(args[2]) ||
	    PyTuple_GET_SIZE(args[2]) != 3) {
		PyErr_Format(PyExc_TypeError, "%s() takes (bytes, int, a tuple of three ints)", name);
		return -1;
	}
	*data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
	*size = PyBytes_GET_SIZE(args[0]);
	*base = PyLong_AsSsize_t(args[1]);
	for (Py_ssize_t i = 0; i < 3; i++)
		limits[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(args[2], i));
	if (PyErr_Occurred())
		return -1;
	if (*base < 0 || *base >= *size || limits[2] < 1) {
		PyErr_Format(PyExc_ValueError, "%s(): base outside the data, or no text allowed", name);
		return -1;
	}
	return 0;
}

static PyObject *pair(PyObject *first, Py_ssize_t end)
{
	PyObject *size = PyLong_FromSsize_t(end), *out;

	if (size == NULL) {
		Py_DECREF(first);
		return NULL;
	}
	out = PyTuple_Pack(2, first, size);
	Py_DECREF(first);
	Py_DECREF(size);
	return out;
}

/* command(data, base, (max_words, max_bulk, max_text)) -> (words, end - base) | None */
static PyObject *command(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	Py_ssize_t base, limits[3], pos, count, size;
	const unsigned char *data;
	PyObject *words;

	if (arguments(args, nargs, "command", &data, &size, &base, limits) < 0)
		return NULL;
	count = number(data, size, base + 1, 2, &pos);
	if (count <= 0 || count > limits[0])
		Py_RETURN_NONE;
	words = PyList_New(count);
	if (words == NULL)
		return NULL;
	for (Py_ssize_t i = 0; i < count; i++) {
		Py_ssize_t length, start, end;
		PyObject *text;

		if (pos >= size || data[pos] != '$')
			goto none;
		length = number(data, size, pos + 1, 9, &start);
		if (length < 0 || length > limits[1])
			goto none;
		end = start + length;
		if (end + 1 >= size || data[end] != '\r' || data[end + 1] != '\n')
			goto none;
		text = word(data + start, length, limits[2]);
		if (text == NULL) {
			Py_DECREF(words);
			return NULL;
		}
		PyList_SET_ITEM(words, i, text);
		pos = end + 2;
	}
	return pair(words, pos - base);
none:
	Py_DECREF(words);
	Py_RETURN_NONE;
}

/* reply(data, base, (max_line, max_bulk, max_text)) -> (kind, text, end - base) | None */
static PyObject *reply(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	Py_ssize_t base, limits[3], size, end;
	const unsigned char *data;
	PyObject *kind, *text, *length, *out;

	if (arguments(args, nargs, "reply", &data, &size, &base, limits) < 0)
		return NULL;
	if (data[base] == '+' || data[base] == '-') {
		Py_ssize_t last = base + limits[0] + 2 < size - 1 ? base + limits[0] + 2 : size - 1;

		end = base + 1;
		while (end < last && !(data[end] == '\r' && data[end + 1] == '\n'))
			end++;
		if (end >= last)
			Py_RETURN_NONE;
		kind = data[base] == '+' ? simple_string : error;
		text = word(data + base + 1, end - base - 1, limits[2]);
	} else if (data[base] == '$') {
		Py_ssize_t start, count = number(data, size, base + 1, 9, &start);

		if (count < 0 || count > limits[1])
			Py_RETURN_NONE;
		end = start + count;
		if (end + 1 >= size || data[end] != '\r' || data[end + 1] != '\n')
			Py_RETURN_NONE;
		kind = bulk_string;
		text = word(data + start, count, limits[2]);
	} else {
		Py_RETURN_NONE;
	}
	if (text == NULL)
		return NULL;
	length = PyLong_FromSsize_t(end + 2 - base);
	if (length == NULL) {
		Py_DECREF(text);
		return NULL;
	}
	out = PyTuple_Pack(3, kind, text, length);
	Py_DECREF(text);
	Py_DECREF(length);
	return out;
}

static PyMethodDef methods[] = {
	{"command", (PyCFunction)(void (*)(void))command, METH_FASTCALL,
	 "command(data, base, (max_words, max_bulk, max_text)): _redis._command_python's reading"},
	{"reply", (PyCFunction)(void (*)(void))reply, METH_FASTCALL,
	 "reply(data, base, (max_line, max_bulk, max_text)): _redis._reply_python's reading"},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
	.m_base = PyModuleDef_HEAD_INIT,
	.m_name = "_respscan",
	.m_doc = "The Redis parser's fast readers, compiled (see _respscan.c).",
	.m_size = -1,
	.m_methods = methods,
};

PyMODINIT_FUNC PyInit__respscan(void)
{
	simple_string = PyUnicode_InternFromString("simple_string");
	error = PyUnicode_InternFromString("error");
	bulk_string = PyUnicode_InternFromString("bulk_string");
	ellipsis = PyUnicode_FromString("\xe2\x80\xa6"); /* U+2026, as clip() marks a cut */
	if (!simple_string || !error || !bulk_string || !ellipsis)
		return NULL;
	return PyModule_Create(&module);
}
