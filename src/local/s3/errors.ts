/** S3's error answer: the code the SDK turns into an exception name, the HTTP status, the message S3 gives. */
export class S3ServiceError extends Error {
  override readonly name = 'S3ServiceError';
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    /** Extra elements of the `<Error>` document (Key, BucketName, VersionId…) and response headers. */
    readonly details: { fields?: Record<string, string>; headers?: Record<string, string> } = {},
  ) {
    super(message);
  }
}

/** The errors the local S3 answers, each with S3's own code, status and wording. */
export const S3Errors = {
  noSuchBucket: (bucket: string) => new S3ServiceError('NoSuchBucket', 404, 'The specified bucket does not exist', { fields: { BucketName: bucket } }),
  noSuchKey: (key: string, headers?: Record<string, string>) => new S3ServiceError('NoSuchKey', 404, 'The specified key does not exist.', { fields: { Key: key }, headers }),
  noSuchVersion: (key: string, versionId: string) =>
    new S3ServiceError('NoSuchVersion', 404, 'The specified version does not exist.', { fields: { Key: key, VersionId: versionId } }),
  noSuchUpload: (uploadId: string) =>
    new S3ServiceError('NoSuchUpload', 404, 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', {
      fields: { UploadId: uploadId },
    }),
  accessDenied: (message: string) => new S3ServiceError('AccessDenied', 403, message),
  preconditionFailed: (condition: string) =>
    new S3ServiceError('PreconditionFailed', 412, 'At least one of the pre-conditions you specified did not hold', { fields: { Condition: condition } }),
  invalidRequest: (message: string) => new S3ServiceError('InvalidRequest', 400, message),
  invalidArgument: (message: string, name?: string, value?: string) =>
    new S3ServiceError('InvalidArgument', 400, message, { fields: name ? { ArgumentName: name, ArgumentValue: value ?? '' } : {} }),
  invalidRange: (size: number) =>
    new S3ServiceError('InvalidRange', 416, 'The requested range is not satisfiable', {
      fields: { ActualObjectSize: String(size) },
      headers: { 'content-range': `bytes */${size}` },
    }),
  notImplemented: (message = 'A header you provided implies functionality that is not implemented') => new S3ServiceError('NotImplemented', 501, message),
  malformedXml: () => new S3ServiceError('MalformedXML', 400, 'The XML you provided was not well-formed or did not validate against our published schema'),
  badDigest: (algorithm: string) => new S3ServiceError('BadDigest', 400, `The ${algorithm} you specified did not match the calculated checksum.`),
  incompleteBody: () => new S3ServiceError('IncompleteBody', 400, 'You did not provide the number of bytes specified by the Content-Length HTTP header'),
  missingContentLength: () => new S3ServiceError('MissingContentLength', 411, 'You must provide the Content-Length HTTP header.'),
  entityTooLarge: (max: number) => new S3ServiceError('EntityTooLarge', 400, 'Your proposed upload exceeds the maximum allowed size', { fields: { MaxSizeAllowed: String(max) } }),
  entityTooSmall: () => new S3ServiceError('EntityTooSmall', 400, 'Your proposed upload is smaller than the minimum allowed object size.'),
  invalidPart: () =>
    new S3ServiceError(
      'InvalidPart',
      400,
      "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
    ),
  invalidPartOrder: () => new S3ServiceError('InvalidPartOrder', 400, 'The list of parts was not in ascending order. Parts must be ordered by part number.'),
  invalidBucketName: (bucket: string) => new S3ServiceError('InvalidBucketName', 400, 'The specified bucket is not valid.', { fields: { BucketName: bucket } }),
  bucketAlreadyOwnedByYou: (bucket: string) =>
    new S3ServiceError('BucketAlreadyOwnedByYou', 409, 'Your previous request to create the named bucket succeeded and you already own it.', { fields: { BucketName: bucket } }),
  bucketNotEmpty: (bucket: string) => new S3ServiceError('BucketNotEmpty', 409, 'The bucket you tried to delete is not empty', { fields: { BucketName: bucket } }),
  methodNotAllowed: (method: string, resourceType: string, headers?: Record<string, string>) =>
    new S3ServiceError('MethodNotAllowed', 405, 'The specified method is not allowed against this resource.', { fields: { Method: method, ResourceType: resourceType }, headers }),
  contentSha256Mismatch: (client: string, computed: string) =>
    new S3ServiceError('XAmzContentSHA256Mismatch', 400, "The provided 'x-amz-content-sha256' header does not match what was computed.", {
      fields: { ClientComputedContentSHA256: client, S3ComputedContentSHA256: computed },
    }),
  invalidDigest: () => new S3ServiceError('InvalidDigest', 400, 'The Content-MD5 you specified was invalid.'),
  keyTooLong: () => new S3ServiceError('KeyTooLongError', 400, 'Your key is too long'),
} as const;
