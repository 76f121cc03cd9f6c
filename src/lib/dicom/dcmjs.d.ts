// The small part of dcmjs fiona uses: its data dictionary. dcmjs ships no types.
// Nothing of dcmjs's dataset reading or writing is used (see DESIGN.md: it loses data).
declare module 'dcmjs' {
  export interface DcmjsDictionaryEntry {
    tag: string; // "(gggg,eeee)", upper-case hex; repeating groups appear as their xx=00 member
    vr: string; // DICOM VR, or dcmjs pseudo VRs: 'ox' (OB or OW), 'xs' (US or SS), 'lt' (US, SS or OW), 'up' (UL), 'na'
    vm: string;
    name: string; // the DICOM keyword, "RETIRED_" prefixed for retired ones
    version?: string;
  }
  const dcmjs: {
    data: {
      DicomMetaDictionary: {
        nameMap: Record<string, DcmjsDictionaryEntry>;
      };
    };
  };
  export default dcmjs;
}
