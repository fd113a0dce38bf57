// What a refusal message quotes of an Azure service's answer.
import test from 'ava'
import { serviceErrorDetail } from '../../src/http/error-detail.js'

test("Azure's error shape gives code and message; anything else is quoted, cut to the limit", (t) => {
  t.is(serviceErrorDetail('{"error":{"code":"KeyNotFound","message":"A key with (name/id) k was not found"}}'), 'KeyNotFound: A key with (name/id) k was not found')
  t.is(serviceErrorDetail('{"error":{"code":"Forbidden"}}'), 'Forbidden: ')
  t.is(serviceErrorDetail('upstream connect error'), 'upstream connect error')
  t.is(serviceErrorDetail('x'.repeat(600)), 'x'.repeat(500))
  t.is(serviceErrorDetail(`<html>${'y'.repeat(400)}</html>`, 10), '<html>yyyy')
  t.is(serviceErrorDetail('{"error":"text"}'), '{"error":"text"}', 'an error that is not an object is quoted')
})
